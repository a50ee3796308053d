"""FC-CLIP segmentation: inference images/s and peak memory per variant, training iterations/s.

Inference: one --size image (1344 px, FC-CLIP's test size) through the whole
segmentor (sliding-window backbone at the config's test stride, pixel decoder,
250-query masked-attention decoder, in- and out-of-vocabulary classifiers,
semantic + panoptic + instance post-processing) with a --num-classes
vocabulary. The text embeddings are computed once before timing (they are
cached per vocabulary in use). Models are randomly initialised (speed does
not depend on the weights); each variant is measured in a fresh process for
fair peak-memory figures (see tools/benchmarks/_common.py).

Training: iterations/s of tools/train.py's loop on the tiny synthetic config
(batch 4 of 128 px images, CPU by default), after warm-up iterations.

examples:
  python tools/benchmark.py segmentation                      # Tiny, S, B (+ L on a GPU)
  python tools/benchmark.py segmentation --variants Tiny --size 512 --train-iters 10
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
import tempfile
import time
from typing import Any, Dict, List

import torch

from ._common import (MB, PeakMemory, add_run_arguments, device_name, format_table,
                      max_rss_bytes, memory_footnote, parse_size, run_measurements, time_calls)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODEL_CONFIGS = {
    'Tiny': 'configs/ov_seg/vitamin_tiny_synthetic.py',
    'S': 'configs/_base_/models/fcclip_vitamin_s.py',
    'B': 'configs/_base_/models/fcclip_vitamin_b.py',
    'L': 'configs/_base_/models/fcclip_vitamin_l.py',
    'XL': 'configs/_base_/models/fcclip_vitamin_xl.py',
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variants', default='auto',
                        help="comma-separated of Tiny, S, B, L, XL; 'auto' = Tiny,S,B and L "
                             'when a GPU is used (default: %(default)s)')
    parser.add_argument('--size', default='1344', help='image size, N or HxW (default: 1344)')
    parser.add_argument('--num-classes', type=int, default=150,
                        help='vocabulary size (default: 150, as ADE20K)')
    parser.add_argument('--repeats', type=int, default=1, help='timed runs per variant')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs before timing')
    parser.add_argument('--train-iters', type=int, default=20,
                        help='timed training iterations of the tiny config (0 skips training)')
    parser.add_argument('--train-warmup', type=int, default=5, help='untimed iterations first')
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(measure_train(spec) if spec.get('train') else measure(spec)))
        return 0
    from vitamin_dense.apis import resolve_device
    from vitamin_dense.errors import ConfigError
    device = resolve_device(args.device)
    if args.variants == 'auto':
        variants = ['Tiny', 'S', 'B'] + (['L'] if device.type == 'cuda' else [])
    else:
        variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    unknown = [v for v in variants if v not in MODEL_CONFIGS]
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}: choose from {', '.join(MODEL_CONFIGS)}")
    if args.repeats < 1 or args.warmup < 0 or args.num_classes < 1 or args.train_iters < 0:
        raise ConfigError('--repeats and --num-classes must be >= 1, --warmup and '
                          '--train-iters >= 0')
    try:
        size = parse_size(args.size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    base = dict(size=size, num_classes=args.num_classes, repeats=args.repeats,
                warmup=args.warmup, device=args.device, threads=args.threads)
    specs = [dict(base, variant=v) for v in variants]
    if args.train_iters:
        specs.append(dict(train=True, iters=args.train_iters, warmup=args.train_warmup,
                          device=args.device, threads=args.threads))
    results = run_measurements(
        'segmentation', specs, lambda s: measure_train(s) if s.get('train') else measure(s),
        lambda s: 'training (tiny config)' if s.get('train') else
        f"{s['variant']} at {size[0]}x{size[1]}", args)
    print(report(results, isolated=not args.in_process))
    return 0


def _build_model(variant: str, device: torch.device):
    from vitamin_dense.engine.config import load_config
    from vitamin_dense.registry import MODELS, register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = load_config(osp.join(ROOT, MODEL_CONFIGS[variant]))
    cfg.model.backbone.weights = None
    cfg.model.setdefault('text_encoder', {})['weights'] = None
    cfg.model.text_encoder['disk_cache'] = False
    return MODELS.build(cfg.model).to(device).eval()


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Build one variant's segmentor and time full inference on one image."""
    from mmengine.structures import BaseDataElement

    from vitamin_dense.apis import resolve_device
    from vitamin_dense.backbones import count_windows
    if spec.get('threads'):
        torch.set_num_threads(int(spec['threads']))
    device = resolve_device(spec.get('device', 'auto'))
    model = _build_model(spec['variant'], device)
    k = int(spec['num_classes'])
    model.set_vocabulary([f'class {i}' for i in range(k)], 'test')
    start = time.perf_counter()
    model.class_embeddings('test')  # text encoding, cached from here on
    text_seconds = time.perf_counter() - start
    h, w = spec['size']
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)

    def predict():
        with torch.inference_mode():
            sample = BaseDataElement(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
            data = model.data_preprocessor(dict(inputs=[image.to(device)],
                                                data_samples=[sample]), False)
            return model.predict(**data)

    with PeakMemory(device) as memory:
        times = time_calls(predict, int(spec['repeats']), int(spec['warmup']), device)
    bb = model.backbone
    stride = model.test_cfg['stride'] or bb.test_stride
    best = min(times)
    return {
        'variant': spec['variant'], 'model': bb.model_name, 'window': bb.window_size,
        'stride': stride, 'windows': count_windows(h, w, bb.window_size, stride),
        'queries': model.head.num_queries, 'classes': k, 'size': f'{h}x{w}',
        'sec_per_image': best, 'sec_median': statistics.median(times),
        'images_per_s': 1.0 / best, 'peak_extra_mb': memory.extra_mb,
        'max_rss_mb': max_rss_bytes() / MB if device.type == 'cpu' else None,
        'text_seconds': text_seconds, 'repeats': len(times), 'device': device_name(device),
    }


def measure_train(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Iterations/s of the tiny config's training loop (synthetic data in a temp dir)."""
    from mmengine.hooks import Hook

    from vitamin_dense.apis import resolve_device
    from vitamin_dense.engine.config import build_runner, load_config
    if spec.get('threads'):
        torch.set_num_threads(int(spec['threads']))
    device = resolve_device(spec.get('device', 'auto'))
    warmup, iters = int(spec['warmup']), int(spec['iters'])
    stamps: List[float] = []

    class _Stamp(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(osp.join(ROOT, MODEL_CONFIGS['Tiny']))
        cfg.train_dataloader.dataset.update(data_root=osp.join(tmp, 'data') + '/',
                                            generator=dict(num_images=32, image_size=128))
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
        cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
        cfg.train_cfg.max_iters = warmup + iters
        cfg.param_scheduler.end = warmup + iters
        cfg.default_hooks.checkpoint.update(interval=10 ** 9, save_last=False)
        cfg.default_hooks.logger.interval = 10 ** 9
        cfg.work_dir = osp.join(tmp, 'work')
        cfg.launcher = 'none'
        if device.type == 'cpu':
            os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
        runner = build_runner(cfg)
        runner.register_hook(_Stamp(), priority='LOWEST')
        with PeakMemory(device) as memory:
            runner.train()
        batch = cfg.train_dataloader.batch_size
    timed = stamps[warmup:]
    seconds = (timed[-1] - stamps[warmup - 1]) if warmup else (timed[-1] - timed[0])
    n = len(timed) if warmup else len(timed) - 1
    return {'train': True, 'config': MODEL_CONFIGS['Tiny'], 'batch': batch,
            'iters': n, 'iters_per_s': n / seconds, 'sec_per_iter': seconds / n,
            'images_per_s': n * batch / seconds, 'peak_extra_mb': memory.extra_mb,
            'device': device_name(device)}


def report(results: List[Dict[str, Any]], isolated: bool = True) -> str:
    lines = []
    inference = [r for r in results if not r.get('train')]
    if inference:
        r0 = inference[0]
        lines.append(f"FC-CLIP inference (semantic + panoptic + instance), {r0['size']} image, "
                     f"{r0['classes']} classes, random weights, device: {r0['device']}")
        lines.append(format_table(inference, [
            ('variant', 'variant', None), ('model', 'model', None), ('window', 'window', None),
            ('stride', 'stride', None), ('windows', 'windows', None),
            ('queries', 'queries', None), ('sec_per_image', 's/img', '{:.2f}'),
            ('images_per_s', 'img/s', '{:.3f}'), ('peak_extra_mb', 'peak MB', '{:.0f}'),
            ('text_seconds', 'text s (once)', '{:.2f}')]))
    for r in results:
        if r.get('train'):
            lines.append('')
            lines.append(f"Training, {r['config']} (batch {r['batch']}), device: {r['device']}: "
                         f"{r['iters_per_s']:.2f} it/s ({r['sec_per_iter']:.2f} s/it, "
                         f"{r['images_per_s']:.1f} img/s over {r['iters']} iterations), "
                         f"peak {r['peak_extra_mb']:.0f} MB above the start")
    lines.append('')
    lines.append(memory_footnote(results, isolated))
    return '\n'.join(lines)
