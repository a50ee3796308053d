"""ViTamin backbone + sliding window: throughput (images/s, windows/s) and peak memory.

For each variant, one image of --size runs through ViTaminBackbone.forward
(all windows, stitched outputs) twice over: windows batched in chunks sized by
the memory budget ("batched"), and one window per call ("loop"), in the same
run. Then one --large-size image (8000x8000 by default) runs under
--budget-mb to show that memory stays bounded: its peak is compared with
what must be held anyway (the stitched outputs) plus the budget for window
activations.

Each measurement runs in a fresh Python process (fair peak-memory figures:
see tools/benchmarks/_common.py for the method); --in-process skips that for
quick smoke runs. Weights do not change speed: models are randomly
initialised unless --weights is given.

example (seconds):  python tools/benchmark.py backbone --variants ViTamin-Tiny --size 256 \\
                        --repeats 1 --large-size 512 --in-process
"""
from __future__ import annotations

import argparse
import math
import json
import statistics
from typing import Any, Dict, List

import torch

from ._common import (MB, PeakMemory, add_run_arguments, device_name, format_table,
                      max_rss_bytes, memory_footnote, parse_size, run_measurements, time_calls)

DEFAULT_VARIANTS = 'ViTamin-Tiny,ViTamin-S,ViTamin-B'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variants', default=DEFAULT_VARIANTS,
                        help='comma-separated open_clip names (default: %(default)s)')
    parser.add_argument('--size', default='1344', help='image size, N or HxW (default: 1344)')
    parser.add_argument('--stride', type=int, default=None,
                        help='window stride in px (default: the window, i.e. no overlap)')
    parser.add_argument('--modes', default='batched,loop',
                        help="'batched' (chunks sized by --budget-mb), 'loop' (one window per "
                             'call), comma-separated (default: %(default)s)')
    parser.add_argument('--outputs', choices=('all', 'clip'), default='all',
                        help="stitched outputs: 'all' (s4, s8, s16, s32, clip) or 'clip' only "
                             '(what training-free segmentation needs)')
    parser.add_argument('--repeats', type=int, default=2, help='timed runs per measurement')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs before timing')
    parser.add_argument('--budget-mb', type=float, default=1024,
                        help='memory budget for window activations (default: %(default)s)')
    parser.add_argument('--large-size', default='8000',
                        help="size of the bounded-memory run (default: 8000; 'none' skips it)")
    parser.add_argument('--large-variant', default='ViTamin-Tiny',
                        help='variant of the bounded-memory run (default: %(default)s; '
                             'ViTamin-S takes minutes on a CPU)')
    parser.add_argument('--weights', default=None,
                        help='weights to load (default: random init; speed is the same)')
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0
    from vitamin_dense.backbones import get_variant
    from vitamin_dense.errors import ConfigError
    variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    modes = [m.strip() for m in args.modes.split(',') if m.strip()]
    bad = [m for m in modes if m not in ('batched', 'loop')]
    if bad or not modes:
        raise ConfigError(f"unknown --modes {bad or modes}: use 'batched' and/or 'loop'")
    if args.repeats < 1 or args.warmup < 0:
        raise ConfigError('--repeats must be >= 1 and --warmup >= 0')
    for name in variants + [args.large_variant]:
        get_variant(name)  # unknown names fail here, before any work
    try:
        size = parse_size(args.size)
        large = None if args.large_size.lower() == 'none' else parse_size(args.large_size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    base = dict(stride=args.stride, outputs=args.outputs, budget_mb=args.budget_mb,
                device=args.device, threads=args.threads, weights=args.weights)
    specs = [dict(base, variant=v, size=size, mode=m, repeats=args.repeats, warmup=args.warmup)
             for v in variants for m in modes]
    if large is not None:
        specs.append(dict(base, variant=args.large_variant, size=large, mode='batched',
                          repeats=1, warmup=0, large=True))
    results = run_measurements(
        'backbone', specs, measure,
        lambda s: f"{s['variant']} {s['mode']} at {s['size'][0]}x{s['size'][1]}", args)
    print(report(results, isolated=not args.in_process))
    return 0


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One measurement: build the backbone, run one image, time it and watch memory."""
    from vitamin_dense.apis import resolve_device
    from vitamin_dense.backbones import LEVELS, ViTaminBackbone, count_windows
    if spec.get('threads'):
        torch.set_num_threads(int(spec['threads']))
    device = resolve_device(spec.get('device', 'auto'))
    h, w = spec['size']
    loop = spec['mode'] == 'loop'
    backbone = ViTaminBackbone(
        spec['variant'], spec.get('weights'), test_stride=spec.get('stride'),
        out_levels=LEVELS if spec.get('outputs', 'all') == 'all' else (), with_clip_map=True,
        max_windows_per_chunk=1 if loop else None,
        memory_budget_mb=spec.get('budget_mb')).to(device).eval()
    stride = backbone.test_stride
    windows = count_windows(h, w, backbone.window_size, stride)
    image = torch.randn(1, 3, h, w, device=device)
    shapes: Dict[str, tuple] = {}

    def forward():
        with torch.inference_mode():
            out = backbone(image)
            if not shapes:
                shapes.update({k: tuple(v.shape) for k, v in out.items()})
            return None

    with PeakMemory(device) as memory:
        times = time_calls(forward, int(spec['repeats']), int(spec['warmup']), device)
    output_bytes = sum(4 * math.prod(s) for s in shapes.values())
    best = min(times)
    return {
        'variant': spec['variant'], 'window': backbone.window_size, 'stride': stride,
        'mode': spec['mode'], 'size': f'{h}x{w}', 'windows': windows,
        'chunk': backbone.max_windows_per_chunk, 'outputs': spec.get('outputs', 'all'),
        'repeats': len(times), 'sec_per_image': best, 'sec_median': statistics.median(times),
        'images_per_s': 1.0 / best, 'windows_per_s': windows / best,
        'peak_extra_mb': memory.extra_mb, 'baseline_mb': memory.baseline / MB,
        'max_rss_mb': max_rss_bytes() / MB if device.type == 'cpu' else None,
        'input_mb': 4 * 3 * h * w / MB, 'output_mb': output_bytes / MB,
        'budget_mb': spec.get('budget_mb'), 'large': bool(spec.get('large')),
        'device': device_name(device),
    }


def report(results: List[Dict[str, Any]], isolated: bool = True) -> str:
    """Readable tables: throughput per variant and mode, then the bounded-memory run."""
    lines = []
    normal = [r for r in results if not r['large']]
    large = [r for r in results if r['large']]
    if normal:
        device = normal[0]['device']
        lines.append(f"Backbone + sliding window, {normal[0]['size']} image, outputs: "
                     f"{normal[0]['outputs']}, device: {device}")
        by_variant = {}
        for r in normal:
            by_variant.setdefault(r['variant'], {})[r['mode']] = r
        for r in normal:
            other = by_variant[r['variant']].get('loop')
            r['speedup'] = (other['sec_per_image'] / r['sec_per_image']
                            if r['mode'] == 'batched' and other else None)
        lines.append(format_table(normal, [
            ('variant', 'variant', None), ('window', 'window', None),
            ('stride', 'stride', None), ('mode', 'mode', None), ('windows', 'windows', None),
            ('chunk', 'chunk', None), ('sec_per_image', 's/img', '{:.3f}'),
            ('images_per_s', 'img/s', '{:.3f}'), ('windows_per_s', 'win/s', '{:.1f}'),
            ('speedup', 'vs loop', '{:.2f}x'), ('peak_extra_mb', 'peak MB', '{:.0f}'),
            ('output_mb', 'outputs MB', '{:.0f}')]))
    for r in large:
        lines.append('')
        lines.append(f"Bounded memory: {r['variant']} on a {r['size']} image, "
                     f"{r['windows']} windows in chunks of {r['chunk']} (budget "
                     f"{r['budget_mb']:.0f} MB), {r['sec_per_image']:.1f} s")
        lines.append(f"  peak {r['peak_extra_mb']:.0f} MB above the baseline (which holds the "
                     f"{r['input_mb']:.0f} MB input) = stitched outputs {r['output_mb']:.0f} MB + "
                     f"window work {max(0.0, r['peak_extra_mb'] - r['output_mb']):.0f} MB "
                     f"(budget {r['budget_mb']:.0f} MB)")
    lines.append('')
    lines.append(memory_footnote(results, isolated))
    return '\n'.join(lines)
