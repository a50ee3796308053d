"""Fine-tuning the backbone: peak memory and time of one training step per checkpointing mode.

One image of --size goes through a fine-tuned ViTaminBackbone (every block
trainable, train mode, all four levels returned, as the mmseg config; the
mmdet configs return s16 only), a loss on the stitched outputs, the
backward pass and an AdamW step, for each --grad-checkpointing mode:

  none    no checkpointing: every window's graph lives until the backward pass
  block   the stem, every MBConv block and every ViT block keep only their inputs
  chunk   each chunk of windows keeps only its input windows (what True means)
  both    chunk, and block inside the recomputed chunk

Chunks follow --budget-mb (with checkpointing, sized by the per-window cost
of a whole forward graph). Each mode runs in a fresh Python process (see
tools/benchmarks/_common.py for how peak memory is measured).

example (seconds):  python tools/benchmark.py finetune --variant ViTamin-Tiny --size 256 \\
                        --modes none,chunk --in-process
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List

import torch

from ._common import (MB, PeakMemory, add_run_arguments, device_name, format_table,
                      memory_footnote, parse_size, run_measurements, time_calls, worker_device)

MODES = ('none', 'block', 'chunk', 'both')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variant', default='ViTamin-S', help='open_clip name (default: %(default)s)')
    parser.add_argument('--size', default='1344', help='image size, N or HxW (default: 1344)')
    parser.add_argument('--modes', default=','.join(MODES),
                        help='grad-checkpointing modes, comma-separated (default: %(default)s)')
    parser.add_argument('--budget-mb', type=float, default=2048,
                        help="the backbone's memory_budget_mb (default: %(default)s)")
    parser.add_argument('--batch', type=int, default=1, help='images per step (default: 1)')
    parser.add_argument('--repeats', type=int, default=1, help='timed steps (default: 1)')
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0
    from vitamin_dense.backbones import get_variant
    from vitamin_dense.errors import ConfigError
    modes = [m.strip() for m in args.modes.split(',') if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ConfigError(f'unknown --modes {bad or modes}: use {", ".join(MODES)}')
    if args.repeats < 1 or args.batch < 1:
        raise ConfigError('--repeats and --batch must be >= 1')
    get_variant(args.variant)
    try:
        size = parse_size(args.size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    specs = [dict(variant=args.variant, size=size, mode=m, budget_mb=args.budget_mb,
                  batch=args.batch, repeats=args.repeats, device=args.device,
                  threads=args.threads) for m in modes]
    results = run_measurements('finetune', specs, measure,
                               lambda s: f"{s['variant']} grad_checkpointing={s['mode']}", args)
    print(report(results, isolated=not args.in_process))
    return 0


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Build the fine-tuned backbone, run training steps, watch memory."""
    from vitamin_dense.backbones import LEVELS, ViTaminBackbone, count_windows
    device = worker_device(spec)
    h, w = spec['size']
    mode = spec['mode']
    backbone = ViTaminBackbone(
        spec['variant'], None, frozen=False, out_levels=LEVELS, with_clip_map=False,
        memory_budget_mb=spec['budget_mb'],
        grad_checkpointing=False if mode == 'none' else mode).to(device).train()
    chunk = backbone.grad_windows_per_chunk() if mode != 'none' else \
        backbone.max_windows_per_chunk
    optimizer = torch.optim.AdamW([p for p in backbone.parameters() if p.requires_grad],
                                  lr=1e-5)
    images = torch.randn(int(spec['batch']), 3, h, w, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        out = backbone(images)
        loss = sum(v.float().pow(2).mean() for v in out.values())
        loss.backward()
        optimizer.step()

    with PeakMemory(device) as memory:
        times = time_calls(step, int(spec['repeats']), 0, device)
    return {
        'variant': spec['variant'], 'size': f'{h}x{w}', 'batch': int(spec['batch']),
        'mode': mode, 'windows': count_windows(h, w, backbone.window_size,
                                               backbone.train_stride) * int(spec['batch']),
        'chunk': chunk, 'budget_mb': spec['budget_mb'], 'sec_per_step': min(times),
        'peak_extra_mb': memory.extra_mb, 'device': device_name(device),
    }


def report(results: List[Dict[str, Any]], isolated: bool = True) -> str:
    first = results[0]
    lines = [f"Fine-tuning step (forward, backward, AdamW): {first['variant']}, "
             f"{first['batch']} x {first['size']}, budget {first['budget_mb']:.0f} MB, "
             f"device: {first['device']}",
             format_table(results, [
                 ('mode', 'grad_checkpointing', None), ('windows', 'windows', None),
                 ('chunk', 'chunk', None), ('sec_per_step', 's/step', '{:.2f}'),
                 ('peak_extra_mb', 'peak MB', '{:,.0f}')]),
             '', memory_footnote(results, isolated)]
    return '\n'.join(lines)


__all__ = ['add_arguments', 'run', 'measure', 'report', 'MB']
