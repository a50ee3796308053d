"""Segmentation heads side by side: deformable attention paths, decoder mask prediction.

Deformable attention: one layer of the pixel decoder's encoder (MSDeformAttn,
256 channels, 8 heads, 3 levels, 4 points, Deformable DETR's initial offsets)
over the maps of a --size image (strides 8, 16, 32: every token is a query),
once per --impls entry ('gather': the PyTorch default, a weighted
F.embedding_bag; 'grid_sample': one grid_sample per level; 'mmcv': the
compiled kernel where it exists), round-robin, fastest of --repeats; the
largest difference from 'grid_sample' is reported.

Transformer decoder: Mask2Former's masked-attention decoder (250 queries, 9
layers, 256 wide) on random pixel-decoder outputs of the image: inference as
it runs now (intermediate masks at the attention resolution only) against
every step's masks at the full stride-4 resolution (``keep_all=True``, what
inference computed before), and the largest difference of the final masks.

example:  python tools/benchmark.py heads --size 1344 --threads 1
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List

import torch

from ._common import (add_run_arguments, device_name, format_table, now, parse_size,
                      precision_context, run_measurements, worker_device)

IMPLS = ('gather', 'grid_sample', 'mmcv')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--size', default='1344', help='image size, N or HxW (default: 1344)')
    parser.add_argument('--impls', default='gather,grid_sample',
                        help='deformable attention paths, comma-separated (default: %(default)s)')
    parser.add_argument('--queries', type=int, default=250, help='decoder queries (default: 250)')
    parser.add_argument('--parts', default='attention,decoder',
                        help="what to measure: 'attention', 'decoder' (default: both)")
    parser.add_argument('--repeats', type=int, default=3, help='timed rounds')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0
    from vitamin_dense.errors import ConfigError
    impls = [i.strip() for i in args.impls.split(',') if i.strip()]
    parts = [p.strip() for p in args.parts.split(',') if p.strip()]
    if not impls or set(impls) - set(IMPLS) or not parts or \
            set(parts) - {'attention', 'decoder'}:
        raise ConfigError(f"--impls takes {', '.join(IMPLS)}; --parts attention and/or decoder")
    if args.repeats < 1 or args.warmup < 0:
        raise ConfigError('--repeats must be >= 1 and --warmup >= 0')
    try:
        size = parse_size(args.size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    spec = dict(size=size, impls=impls, parts=parts, queries=args.queries,
                repeats=args.repeats, warmup=args.warmup, device=args.device,
                threads=args.threads, precision=args.precision)
    results = run_measurements('heads', [spec], measure,
                               lambda s: f"heads at {size[0]}x{size[1]}", args)
    print(report(results[0]))
    return 0


def _round_robin(fns: Dict[str, Any], repeats: int, warmup: int,
                 device: torch.device) -> Dict[str, float]:
    best = {name: float('inf') for name in fns}
    for rnd in range(warmup + repeats):
        for name, fn in fns.items():
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            start = now()
            fn()
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            if rnd >= warmup:
                best[name] = min(best[name], now() - start)
    return best


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    device = worker_device(spec)
    torch.manual_seed(0)
    h, w = spec['size']
    out: Dict[str, Any] = {'size': f'{h}x{w}', 'device': device_name(device),
                           'precision': spec.get('precision') or 'fp32'}
    if 'attention' in spec['parts']:
        out['attention'] = _attention(spec, device, h, w)
    if 'decoder' in spec['parts']:
        out['decoder'] = _decoder(spec, device, h, w)
    return out


def _attention(spec: Dict[str, Any], device: torch.device, h: int, w: int) -> Dict[str, Any]:
    from vitamin_dense.heads import MSDeformAttn, mmcv_kernel_available
    from vitamin_dense.heads.pixel_decoder import encoder_reference_points
    shapes = [(-(-h // s), -(-w // s)) for s in (32, 16, 8)]
    n = sum(a * b for a, b in shapes)
    layer = MSDeformAttn(256, 8, 3, 4).to(device).eval()
    with torch.no_grad():  # spread the attention a little (the init gives uniform weights)
        layer.attention_weights.weight.normal_(std=0.02)
    x = torch.randn(1, n, 256, device=device)
    pos = torch.randn(1, n, 256, device=device)
    refs = encoder_reference_points(shapes, 3, device)
    impl = {'gather': 'pytorch', 'grid_sample': 'grid_sample', 'mmcv': 'mmcv'}
    impls = [i for i in spec['impls'] if i != 'mmcv' or mmcv_kernel_available(device)]
    outputs = {}

    def call(name):
        layer.impl = impl[name]
        with torch.inference_mode(), precision_context(device, spec.get('precision')):
            outputs[name] = layer(x, refs, x, shapes, query_pos=pos)

    best = _round_robin({i: (lambda i=i: call(i)) for i in impls}, int(spec['repeats']),
                        int(spec['warmup']), device)
    ref = outputs.get('grid_sample')
    rows = [dict(impl=i, seconds=best[i], tokens=n,
                 vs_grid_sample=best[i] / best['grid_sample'] if 'grid_sample' in best else None,
                 max_diff=float((outputs[i].float() - ref.float()).abs().max())
                 if ref is not None else None) for i in impls]
    return dict(rows=rows, shapes=shapes, skipped=[i for i in spec['impls'] if i not in impls])


def _decoder(spec: Dict[str, Any], device: torch.device, h: int, w: int) -> Dict[str, Any]:
    from vitamin_dense.heads import MaskedAttentionDecoder
    decoder = MaskedAttentionDecoder(num_queries=int(spec['queries'])).to(device).eval()
    feats = [torch.randn(1, 256, -(-h // s), -(-w // s), device=device) for s in (32, 16, 8)]
    mask_features = torch.randn(1, 256, -(-h // 4), -(-w // 4), device=device)
    outputs = {}

    def call(keep_all):
        with torch.inference_mode(), precision_context(device, spec.get('precision')):
            outputs[keep_all] = decoder(feats, mask_features, keep_all=keep_all)[-1].masks

    best = _round_robin({'attention resolution': lambda: call(False),
                         'full resolution (before)': lambda: call(True)},
                        int(spec['repeats']), int(spec['warmup']), device)
    diff = float((outputs[False].float() - outputs[True].float()).abs().max())
    scale = float(outputs[True].float().abs().max())
    return dict(rows=[dict(masks=k, seconds=v) for k, v in best.items()],
                ratio=best['attention resolution'] / best['full resolution (before)'],
                max_diff=diff, relative=diff / scale if scale else 0.0,
                queries=int(spec['queries']), layers=decoder.num_layers)


def report(r: Dict[str, Any]) -> str:
    lines = []
    if 'attention' in r:
        a = r['attention']
        lines.append(f"Deformable attention, one encoder layer of a {r['size']} image "
                     f"({a['rows'][0]['tokens']} tokens, levels {a['shapes']}), {r['precision']}, "
                     f"device: {r['device']}; side by side, fastest of the rounds")
        lines.append(format_table(a['rows'], [
            ('impl', 'sampling', None), ('seconds', 's/layer', '{:.3f}'),
            ('vs_grid_sample', 'time vs grid_sample', '{:.2f}x'),
            ('max_diff', 'max |diff|', '{:.1e}')]))
        if a['skipped']:
            lines.append(f"(not available on this device: {', '.join(a['skipped'])})")
    if 'decoder' in r:
        d = r['decoder']
        lines.append('')
        lines.append(f"Transformer decoder, {d['queries']} queries, {d['layers']} layers, "
                     f"{r['size']} image, {r['precision']}, device: {r['device']}")
        lines.append(format_table(d['rows'], [('masks', 'intermediate masks', None),
                                               ('seconds', 's', '{:.3f}')]))
        lines.append(f"time ratio {d['ratio']:.2f}x; final masks differ by at most "
                     f"{d['max_diff']:.1e} ({d['relative']:.1e} of their largest value)")
    return '\n'.join(lines)
