"""OWL detector inference: images/s and peak memory at 896 and 1344 px (per variant).

Times :meth:`OwlDetector.detect` on one square image (sliding windows at the
recipe's test stride, the stitched-map heads for an --classes-word
vocabulary, post-processing with NMS); the text embeddings are computed once
before timing (they are cached in real use too). Models are randomly
initialised: weights do not change speed. Each measurement runs in a fresh
Python process (fair peak memory, see tools/benchmarks/_common.py);
--in-process is for quick smoke runs.

Defaults: ViTamin-Tiny, -S and -B on the CPU; add ViTamin-L-336 with --variants
on a GPU (--device cuda).

example (seconds):  python tools/benchmark.py detection --variants ViTamin-Tiny --sizes 256 \\
                        --repeats 1 --in-process
"""
from __future__ import annotations

import argparse
import json
import statistics
from typing import Any, Dict, List

import torch

from ._common import (MB, PeakMemory, add_run_arguments, device_name, format_table,
                      max_rss_bytes, memory_footnote, parse_size, precision_context,
                      parse_variants, run_measurements, time_calls)

DEFAULT_VARIANTS = 'ViTamin-Tiny,ViTamin-S,ViTamin-B'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variants', default=DEFAULT_VARIANTS,
                        help='comma-separated open_clip names (default: %(default)s; '
                             'ViTamin-L-336 on a GPU)')
    parser.add_argument('--sizes', default='896,1344',
                        help='image sizes, N or HxW, comma-separated (default: %(default)s)')
    parser.add_argument('--stride', type=int, default=None,
                        help='test window stride in px (default: the recipe\'s, 2/3 of the '
                             'window rounded to 16 px)')
    parser.add_argument('--classes', type=int, default=80,
                        help='vocabulary size (default: %(default)s, as COCO)')
    parser.add_argument('--batch', type=int, default=1, help='images per call (default: 1)')
    parser.add_argument('--repeats', type=int, default=2, help='timed runs per measurement')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs before timing')
    parser.add_argument('--budget-mb', type=float, default=2048,
                        help='memory budget for window activations (default: %(default)s)')
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0
    from vitamin_dense.errors import ConfigError
    variants = parse_variants(args.variants, args.stride)
    try:
        sizes = [parse_size(s.strip()) for s in args.sizes.split(',') if s.strip()]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not sizes:
        raise ConfigError('--sizes names no size')
    if args.repeats < 1 or args.warmup < 0 or args.batch < 1 or args.classes < 1:
        raise ConfigError('--repeats, --batch and --classes must be >= 1, --warmup >= 0')
    specs = [dict(variant=v, size=s, stride=args.stride, classes=args.classes, batch=args.batch,
                  repeats=args.repeats, warmup=args.warmup, budget_mb=args.budget_mb,
                  device=args.device, threads=args.threads, precision=args.precision)
             for v in variants for s in sizes]
    results = run_measurements(
        'detection', specs, measure,
        lambda s: f"{s['variant']} at {s['size'][0]}x{s['size'][1]}", args)
    print(report(results, isolated=not args.in_process))
    return 0


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Build a random-init detector, time ``detect`` on ``batch`` images, watch memory."""
    from vitamin_dense.apis import default_detector_config, resolve_device
    from vitamin_dense.backbones import count_windows
    from vitamin_dense.registry import MODELS
    if spec.get('threads'):
        torch.set_num_threads(int(spec['threads']))
    device = resolve_device(spec.get('device', 'auto'))
    cfg = default_detector_config(spec['variant'], None)
    cfg['backbone']['memory_budget_mb'] = spec.get('budget_mb')
    if spec.get('stride'):
        cfg['backbone']['test_stride'] = int(spec['stride'])
    cfg['text_encoder']['progress'] = False
    cfg['text_encoder']['disk_cache'] = False
    cfg['test_cfg'] = dict(score_thr=0.0, max_per_img=100, nms_iou=0.5)
    model = MODELS.build(cfg).to(device).eval()
    h, w = spec['size']
    batch = int(spec.get('batch', 1))
    vocabulary = [f'class {i}' for i in range(int(spec['classes']))]
    queries = model.encode_vocabulary(vocabulary)  # once, as the cache does in real use
    images = torch.randn(batch, 3, h, w, device=device)
    bb = model.backbone
    windows = count_windows(h, w, bb.window_size, bb.test_stride)

    def detect():
        with torch.inference_mode(), precision_context(device, spec.get('precision')):
            model.detect(images, queries=queries)

    with PeakMemory(device) as memory:
        times = time_calls(detect, int(spec['repeats']), int(spec['warmup']), device)
    best = min(times)
    return {
        'variant': spec['variant'], 'window': bb.window_size, 'stride': bb.test_stride,
        'size': f'{h}x{w}', 'windows': windows, 'tokens': -(-h // 16) * -(-w // 16),
        'classes': len(vocabulary), 'batch': batch, 'repeats': len(times),
        'sec_per_image': best / batch, 'sec_median': statistics.median(times) / batch,
        'images_per_s': batch / best, 'peak_extra_mb': memory.extra_mb,
        'max_rss_mb': max_rss_bytes() / MB if device.type == 'cpu' else None,
        'device': device_name(device), 'precision': spec.get('precision') or 'fp32',
    }


def report(results: List[Dict[str, Any]], isolated: bool = True) -> str:
    lines = [f"OWL detector inference (random init; windows at the test stride, heads on the "
             f"stitched map, {results[0]['classes']} classes, NMS), {results[0]['precision']}, "
             f"device: {results[0]['device']}"]
    lines.append(format_table(results, [
        ('variant', 'variant', None), ('size', 'size', None), ('window', 'window', None),
        ('stride', 'stride', None), ('windows', 'windows', None), ('tokens', 'tokens', None),
        ('batch', 'batch', None), ('sec_per_image', 's/img', '{:.3f}'),
        ('images_per_s', 'img/s', '{:.3f}'), ('peak_extra_mb', 'peak MB', '{:.0f}')]))
    lines.append('')
    lines.append(memory_footnote(results, isolated))
    return '\n'.join(lines)
