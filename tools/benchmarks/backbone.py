"""ViTamin backbone + sliding window: throughput, chunk policies side by side, peak memory.

For each variant and stride, one image of --size runs through
ViTaminBackbone.forward (all windows, stitched outputs) under every --modes
entry, the modes interleaved round-robin in one process (--repeats rounds,
the fastest run of each kept), so their ratios are measured side by side on
the same machine load:

  batched  chunks chosen for the device within --budget-mb (the default policy:
           small chunks on a CPU, as many as the budget allows on a GPU)
  loop     one window per call (the reference implementations' way)
  budget   chunks sized by --budget-mb alone (the policy before the device cap)
  N        chunks of N windows
  shared   the default policy in shared-convolution mode (stem and MBConv
           stages once over the whole image, cropped per window); the table
           gives its largest feature deviation from per-window features

--strides takes pixels or 'window' (no overlap) and 'third' (a third of the
window rounded to 16 px, FC-CLIP's test stride). --flops counts the FLOPs of
one window and reports the achieved GFLOP/s (TFLOP/s on a GPU); --matmul also
measures a plain square matrix product in the same run (bf16 with --precision
bf16), the practical ceiling to compare with.

Then one --large-size image (8000x8000 by default) runs under --budget-mb in a
fresh process to show that memory stays bounded: its peak is compared with
what must be held anyway (the stitched outputs) plus the budget.

Peak memory of the side-by-side modes is sampled in their shared process (see
tools/benchmarks/_common.py); weights do not change speed: models are
randomly initialised unless --weights is given.

examples:
  python tools/benchmark.py backbone --variants ViTamin-Tiny --size 256 --repeats 1 \\
      --large-size 512 --in-process
  python tools/benchmark.py backbone --variants ViTamin-S,ViTamin-B --strides window,third \\
      --modes batched,loop,budget,4 --threads 1 --large-size none
  python tools/benchmark.py backbone --variants ViTamin-S --size 896 --strides 80 \\
      --modes batched,shared --threads 1 --large-size none
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from typing import Any, Dict, List, Optional

import torch

from ._common import (MB, PeakMemory, add_run_arguments, device_name, format_table,
                      matmul_rate, max_rss_bytes, memory_footnote, now, parse_size,
                      precision_context, run_measurements)

DEFAULT_VARIANTS = 'ViTamin-Tiny,ViTamin-S,ViTamin-B'
NAMED_MODES = ('batched', 'loop', 'budget', 'shared')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variants', default=DEFAULT_VARIANTS,
                        help='comma-separated open_clip names (default: %(default)s)')
    parser.add_argument('--size', default='1344', help='image size, N or HxW (default: 1344)')
    parser.add_argument('--strides', '--stride', default='window',
                        help="comma-separated strides: pixels, 'window' or 'third' "
                             '(default: %(default)s)')
    parser.add_argument('--modes', default='batched,loop',
                        help="comma-separated of 'batched', 'loop', 'budget', 'shared' and "
                             'chunk sizes (default: %(default)s)')
    parser.add_argument('--outputs', choices=('all', 'clip'), default='all',
                        help="stitched outputs: 'all' (s4, s8, s16, s32, clip) or 'clip' only "
                             '(what training-free segmentation needs)')
    parser.add_argument('--repeats', type=int, default=2, help='timed rounds over the modes')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds before timing')
    parser.add_argument('--budget-mb', type=float, default=1024,
                        help='memory budget for window activations (default: %(default)s)')
    parser.add_argument('--flops', action='store_true',
                        help='count FLOPs per window and report the achieved rate')
    parser.add_argument('--matmul', action='store_true',
                        help='also time a square matrix product (the rate to compare with)')
    parser.add_argument('--large-size', default='8000',
                        help="size of the bounded-memory run (default: 8000; 'none' skips it)")
    parser.add_argument('--large-variant', default='ViTamin-Tiny',
                        help='variant of the bounded-memory run (default: %(default)s; '
                             'ViTamin-S takes minutes on a CPU)')
    parser.add_argument('--weights', default=None,
                        help='weights to load (default: random init; speed is the same)')
    add_run_arguments(parser)


def parse_modes(text: str) -> List[str]:
    from vitamin_dense.errors import ConfigError
    modes = [m.strip() for m in text.split(',') if m.strip()]
    bad = [m for m in modes if m not in NAMED_MODES and not (m.isdigit() and int(m) > 0)]
    if bad or not modes:
        raise ConfigError(f"unknown --modes {bad or modes}: use {', '.join(NAMED_MODES)} "
                          'or chunk sizes')
    return modes


def resolve_stride(text: str, window: int) -> int:
    """A stride in pixels from 'window', 'third' or a number (checked)."""
    from vitamin_dense.backbones import check_stride, snap_stride
    from vitamin_dense.errors import ConfigError
    if text == 'window':
        return window
    if text == 'third':
        return snap_stride(window // 3)
    try:
        return check_stride(int(text), window)
    except ValueError:
        raise ConfigError(f"bad stride '{text}': use pixels, 'window' or 'third'") from None


def run(args: argparse.Namespace) -> int:
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0
    from vitamin_dense.backbones import get_variant
    from vitamin_dense.errors import ConfigError
    variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    modes = parse_modes(args.modes)
    if args.repeats < 1 or args.warmup < 0:
        raise ConfigError('--repeats must be >= 1 and --warmup >= 0')
    windows = {name: get_variant(name).window_size for name in variants + [args.large_variant]}
    strides = [s.strip() for s in args.strides.split(',') if s.strip()] or ['window']
    try:
        size = parse_size(args.size)
        large = None if args.large_size.lower() == 'none' else parse_size(args.large_size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    base = dict(outputs=args.outputs, budget_mb=args.budget_mb, device=args.device,
                threads=args.threads, weights=args.weights, precision=args.precision)
    specs = [dict(base, variant=v, size=size, stride=resolve_stride(s, windows[v]), modes=modes,
                  repeats=args.repeats, warmup=args.warmup, flops=args.flops)
             for v in variants for s in strides]
    if args.matmul:
        specs.append(dict(base, matmul=True))
    if large is not None:
        specs.append(dict(base, variant=args.large_variant, size=large, modes=['batched'],
                          stride=None, repeats=1, warmup=0, large=True))
    results = run_measurements(
        'backbone', specs, measure,
        lambda s: 'matrix product' if s.get('matmul') else
        f"{s['variant']} at {s['size'][0]}x{s['size'][1]}, stride {s['stride'] or 'window'}, "
        f"modes {','.join(s['modes'])}", args)
    rows = [row for r in results for row in (r.get('rows') or [r])]
    if args.json:  # one record per row
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    print(report(rows, isolated=not args.in_process))
    return 0


def _mode_settings(backbone, mode: str) -> Dict[str, Any]:
    """``max_windows_per_chunk`` and ``shared_conv`` of a mode on this backbone."""
    from vitamin_dense.backbones.sliding_window import chunk_size_for_budget
    if mode == 'loop':
        return dict(chunk=1, shared=False)
    if mode == 'budget':
        return dict(chunk=chunk_size_for_budget(backbone._per_window_bytes,
                                                backbone.memory_budget_mb), shared=False)
    if mode.isdigit():
        return dict(chunk=int(mode), shared=False)
    return dict(chunk=None, shared=mode == 'shared')  # the device policy


def window_flops(backbone, device: torch.device, precision: Optional[str]) -> Optional[int]:
    """FLOPs of one window's forward (matrix products and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode
    w = backbone.window_size
    x = torch.zeros(1, 3, w, w, device=device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode(), \
            precision_context(device, precision):
        backbone.forward_window(x)
    return int(counter.get_total_flops())


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One process: build the backbone, run every mode round-robin, time and watch memory."""
    from vitamin_dense.apis import resolve_device
    from vitamin_dense.backbones import LEVELS, ViTaminBackbone, count_windows
    if spec.get('threads'):
        torch.set_num_threads(int(spec['threads']))
    device = resolve_device(spec.get('device', 'auto'))
    if spec.get('matmul'):
        rate = matmul_rate(device, spec.get('precision') or 'fp32')
        return dict(rate, matmul=True, device=device_name(device))
    h, w = spec['size']
    backbone = ViTaminBackbone(
        spec['variant'], spec.get('weights'), test_stride=spec.get('stride'),
        out_levels=LEVELS if spec.get('outputs', 'all') == 'all' else (), with_clip_map=True,
        memory_budget_mb=spec.get('budget_mb')).to(device).eval()
    stride = backbone.test_stride
    windows = count_windows(h, w, backbone.window_size, stride)
    image = torch.randn(1, 3, h, w, device=device)
    modes = list(spec['modes'])
    settings = {m: _mode_settings(backbone, m) for m in modes}
    outputs: Dict[str, Dict[str, torch.Tensor]] = {}

    def forward(mode: str) -> Dict[str, torch.Tensor]:
        backbone.max_windows_per_chunk = settings[mode]['chunk']
        backbone.shared_conv = settings[mode]['shared']
        with torch.inference_mode(), precision_context(device, spec.get('precision')):
            return backbone(image)

    times: Dict[str, List[float]] = {m: [] for m in modes}
    peaks: Dict[str, float] = {m: 0.0 for m in modes}
    baseline_mb = 0.0
    for rnd in range(int(spec['warmup']) + int(spec['repeats'])):
        for mode in modes:
            with PeakMemory(device) as memory:
                start = now()
                out = forward(mode)
                if device.type == 'cuda':
                    torch.cuda.synchronize(device)
                seconds = now() - start
            if rnd >= int(spec['warmup']):
                times[mode].append(seconds)
                peaks[mode] = max(peaks[mode], memory.extra_mb)
                baseline_mb = memory.baseline / MB
            if mode not in outputs and ('shared' in modes):
                outputs[mode] = {k: v.float().cpu() for k, v in out.items()}
            output_bytes = sum(4 * math.prod(v.shape) for v in out.values())
            del out
    flops = window_flops(backbone, device, spec.get('precision')) if spec.get('flops') else None
    reference = next((m for m in modes if m != 'shared'), None)
    rows = []
    for mode in modes:
        best = min(times[mode])
        chunk = settings[mode]['chunk']
        if chunk is None:
            backbone.max_windows_per_chunk = None
            chunk = backbone.max_windows_per_chunk
        row = {
            'variant': spec['variant'], 'window': backbone.window_size, 'stride': stride,
            'mode': mode, 'size': f'{h}x{w}', 'windows': windows, 'chunk': chunk,
            'outputs': spec.get('outputs', 'all'), 'repeats': len(times[mode]),
            'sec_per_image': best, 'sec_median': statistics.median(times[mode]),
            'images_per_s': 1.0 / best, 'windows_per_s': windows / best,
            'peak_extra_mb': peaks[mode], 'baseline_mb': baseline_mb,
            'max_rss_mb': max_rss_bytes() / MB if device.type == 'cpu' else None,
            'input_mb': 4 * 3 * h * w / MB,
            'output_mb': output_bytes / MB,
            'budget_mb': spec.get('budget_mb'), 'large': bool(spec.get('large')),
            'precision': spec.get('precision') or 'fp32', 'device': device_name(device),
            'gflop_per_window': flops / 1e9 if flops else None,
            'gflops': flops * windows / best / 1e9 if flops else None,
        }
        if mode == 'shared' and reference is not None:
            row['deviation'] = {k: _deviation(outputs['shared'][k], outputs[reference][k])
                                for k in outputs[reference]}
            row['deviation_vs'] = reference
        rows.append(row)
    return {'rows': rows}


def _deviation(value: torch.Tensor, reference: torch.Tensor) -> Dict[str, float]:
    """Largest absolute difference, and relative to the reference's largest magnitude."""
    diff = float((value - reference).abs().max())
    scale = float(reference.abs().max())
    return {'max_abs': diff, 'relative': diff / scale if scale else 0.0,
            'mean_abs': float((value - reference).abs().mean())}


def report(results: List[Dict[str, Any]], isolated: bool = True) -> str:
    """Readable tables: time per variant, stride and mode, then the bounded-memory run."""
    lines = []
    normal = [r for r in results if not r.get('large') and not r.get('matmul')]
    large = [r for r in results if r.get('large')]
    matmul = [r for r in results if r.get('matmul')]
    if normal:
        r0 = normal[0]
        lines.append(f"Backbone + sliding window, {r0['size']} image, outputs: {r0['outputs']}, "
                     f"{r0['precision']}, device: {r0['device']}; modes of one variant and "
                     'stride measured side by side (round-robin, fastest run)')
        groups: Dict[tuple, Dict[str, Dict[str, Any]]] = {}
        for r in normal:
            groups.setdefault((r['variant'], r['stride']), {})[r['mode']] = r
        for r in normal:
            loop = groups[(r['variant'], r['stride'])].get('loop')
            r['vs_loop'] = (r['sec_per_image'] / loop['sec_per_image']
                            if loop and r['mode'] != 'loop' else None)
        unit = 1e3 if 'CPU' not in r0['device'] else 1.0
        columns = [
            ('variant', 'variant', None), ('window', 'window', None),
            ('stride', 'stride', None), ('mode', 'mode', None), ('windows', 'windows', None),
            ('chunk', 'chunk', None), ('sec_per_image', 's/img', '{:.3f}'),
            ('windows_per_s', 'win/s', '{:.1f}'), ('vs_loop', 'time vs loop', '{:.2f}x'),
            ('peak_extra_mb', 'peak MB', '{:.0f}')]
        if any(r.get('gflops') for r in normal):
            for r in normal:
                r['rate'] = r['gflops'] / unit if r.get('gflops') else None
            columns.insert(7, ('gflop_per_window', 'GFLOP/win', '{:.2f}'))
            columns.insert(8, ('rate', 'TFLOP/s' if unit > 1 else 'GFLOP/s',
                               '{:.1f}' if unit > 1 else '{:.0f}'))
        lines.append(format_table(normal, columns))
        for r in normal:
            if r.get('deviation'):
                ref = groups[(r['variant'], r['stride'])][r['deviation_vs']]
                lines.append(
                    f"shared convolutions, {r['variant']} stride {r['stride']}: "
                    f"{ref['sec_per_image'] / r['sec_per_image']:.2f}x the speed of "
                    f"'{r['deviation_vs']}'; largest feature deviation per output (relative to "
                    "the output's largest value): " +
                    ', '.join(f"{k} {v['max_abs']:.3g} ({v['relative']:.1%})"
                              for k, v in r['deviation'].items()))
    for r in matmul:
        lines.append('')
        lines.append(f"Matrix product {r['n']}x{r['n']}x{r['n']} {r['dtype']} on {r['device']}: "
                     f"{r['tflops']:.1f} TFLOP/s" if r['tflops'] >= 1 else
                     f"Matrix product {r['n']}x{r['n']}x{r['n']} {r['dtype']} on {r['device']}: "
                     f"{r['tflops'] * 1e3:.0f} GFLOP/s")
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
    lines.append(memory_footnote(results, isolated) +
                 ('; modes of one row group share a process' if normal else ''))
    return '\n'.join(lines)
