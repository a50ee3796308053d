"""Training-free segmentation (dense CLIP map against the text): s/img and peak memory.

One --size image through TrainingFreeSegmentor.predict (sliding windows at
--stride, default half the window; CLIP map against --num-classes text
embeddings; labels at the image size); the text embeddings are computed once
before timing (they are cached in real use). Random weights (speed does not
depend on them); each variant in a fresh process (fair peak memory, see
tools/benchmarks/_common.py).

example:  python tools/benchmark.py training_free --variants ViTamin-Tiny --size 256 --in-process
"""
from __future__ import annotations

import argparse
import json
import statistics
from typing import Any, Dict, List

import torch

from ._common import (MB, PeakMemory, add_run_arguments, device_name, format_table,
                      max_rss_bytes, memory_footnote, parse_size, precision_context,
                      parse_variants, run_measurements, time_calls,
                      worker_device)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variants', default='ViTamin-Tiny,ViTamin-S,ViTamin-B',
                        help='comma-separated open_clip names (default: %(default)s; '
                             'ViTamin-L-336 on a GPU)')
    parser.add_argument('--size', default='1344', help='image size, N or HxW (default: 1344)')
    parser.add_argument('--stride', type=int, default=None,
                        help='window stride in px (default: half the window)')
    parser.add_argument('--num-classes', type=int, default=150, help='vocabulary size')
    parser.add_argument('--repeats', type=int, default=2, help='timed runs')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs first')
    parser.add_argument('--budget-mb', type=float, default=2048,
                        help='memory budget for window activations (default: %(default)s)')
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0
    from vitamin_dense.errors import ConfigError
    variants = parse_variants(args.variants, args.stride)
    if args.repeats < 1 or args.warmup < 0 or args.num_classes < 1:
        raise ConfigError('--repeats and --num-classes must be >= 1, --warmup >= 0')
    try:
        size = parse_size(args.size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    specs = [dict(variant=v, size=size, stride=args.stride, classes=args.num_classes,
                  repeats=args.repeats, warmup=args.warmup, budget_mb=args.budget_mb,
                  device=args.device, threads=args.threads, precision=args.precision)
             for v in variants]
    results = run_measurements('training_free', specs, measure,
                               lambda s: f"{s['variant']} at {size[0]}x{size[1]}", args)
    print(report(results, isolated=not args.in_process))
    return 0


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Build a random-init training-free segmentor and time ``predict`` on one image."""
    from vitamin_dense.backbones import count_windows
    from vitamin_dense.models.training_free import (TrainingFreeSegmentor, label_map,
                                                    stride_region)
    device = worker_device(spec)
    model = TrainingFreeSegmentor(spec['variant'], None, stride=spec.get('stride'),
                                  memory_budget_mb=spec.get('budget_mb'),
                                  text_disk_cache=False).to(device).eval()
    model.text_classifier.progress = False
    model.set_vocabulary([f'class {i}' for i in range(int(spec['classes']))])
    model.class_embeddings()  # once, as the cache does in real use
    h, w = spec['size']
    image = torch.randn(1, 3, h, w, device=device)

    def predict():  # what the Segmenter's training-free predictor does with one image
        with torch.inference_mode(), precision_context(device, spec.get('precision')):
            logits = model.compute_logits(image)[0]
            return label_map(logits, (h, w), stride_region((h, w), logits.shape[-2:]))

    with PeakMemory(device) as memory:
        times = time_calls(predict, int(spec['repeats']), int(spec['warmup']), device)
    bb = model.backbone
    best = min(times)
    return {
        'variant': spec['variant'], 'window': bb.window_size, 'stride': model.stride,
        'size': f'{h}x{w}', 'windows': count_windows(h, w, bb.window_size, model.stride),
        'chunk': bb.max_windows_per_chunk, 'classes': int(spec['classes']),
        'sec_per_image': best, 'sec_median': statistics.median(times),
        'images_per_s': 1.0 / best, 'peak_extra_mb': memory.extra_mb,
        'max_rss_mb': max_rss_bytes() / MB if device.type == 'cpu' else None,
        'precision': spec.get('precision') or 'fp32', 'device': device_name(device),
    }


def report(results: List[Dict[str, Any]], isolated: bool = True) -> str:
    r0 = results[0]
    lines = [f"Training-free segmentation (CLIP map against {r0['classes']} classes, labels at "
             f"the image size), {r0['precision']}, device: {r0['device']}"]
    lines.append(format_table(results, [
        ('variant', 'variant', None), ('size', 'size', None), ('window', 'window', None),
        ('stride', 'stride', None), ('windows', 'windows', None), ('chunk', 'chunk', None),
        ('sec_per_image', 's/img', '{:.3f}'), ('images_per_s', 'img/s', '{:.3f}'),
        ('peak_extra_mb', 'peak MB', '{:.0f}')]))
    lines.append('')
    lines.append(memory_footnote(results, isolated))
    return '\n'.join(lines)
