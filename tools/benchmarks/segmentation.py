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

--breakdown: where the time goes, stage by stage (backbone, pixel decoder and
its deformable attention, transformer decoder and its mask prediction,
classifiers, ensemble, post-processing), all figures from the fastest of the
timed runs. --against CHECKOUT measures another checkout's vitamin_dense
(e.g. a `git worktree` of an older commit) with the same benchmark code in
alternating fresh processes, one timed run each, --repeats rounds, and prints
both with their ratio: side by side, on the same machine load.

examples:
  python tools/benchmark.py segmentation                      # Tiny, S, B (+ L on a GPU)
  python tools/benchmark.py segmentation --variants Tiny --size 512 --train-iters 10
  python tools/benchmark.py segmentation --variants S --breakdown --train-iters 0 --threads 1
  python tools/benchmark.py segmentation --variants S --breakdown --train-iters 0 \\
      --threads 1 --warmup 0 --repeats 3 --against /tmp/vitamin-dense-base
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
from typing import Any, Dict, List, Optional

import torch

from ._common import (CLOCK_ENV, MB, PeakMemory, add_run_arguments, code_root, device_name,
                      format_table, max_rss_bytes, memory_footnote, now, parse_size,
                      precision_context, run_isolated, run_measurements)
from ._stages import StageTimer, best_run, stage_rows
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
    parser.add_argument('--breakdown', action='store_true',
                        help='time every stage of inference (see above)')
    parser.add_argument('--against', default=None, metavar='CHECKOUT',
                        help="also measure this checkout's vitamin_dense, side by side")
    parser.add_argument('--impl', default=None, choices=('auto', 'pytorch', 'grid_sample', 'mmcv'),
                        help="deformable attention implementation (default: the config's)")
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
    if args.against and not osp.isdir(osp.join(args.against, 'vitamin_dense')):
        raise ConfigError(f"--against {args.against}: no vitamin_dense package there; give a "
                          'checkout (e.g. git worktree add /tmp/base COMMIT)')
    base = dict(size=size, num_classes=args.num_classes, repeats=args.repeats,
                warmup=args.warmup, device=args.device, threads=args.threads,
                breakdown=args.breakdown, precision=args.precision, impl=args.impl)
    specs = [dict(base, variant=v) for v in variants]
    if args.against:
        results = _side_by_side(specs, args)
    else:
        if args.train_iters:
            specs.append(dict(train=True, iters=args.train_iters, warmup=args.train_warmup,
                              device=args.device, threads=args.threads))
        results = run_measurements(
            'segmentation', specs, lambda s: measure_train(s) if s.get('train') else measure(s),
            lambda s: 'training (tiny config)' if s.get('train') else
            f"{s['variant']} at {size[0]}x{size[1]}", args)
    print(report(results, isolated=not args.in_process))
    return 0


def _side_by_side(specs: List[Dict[str, Any]], args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Each spec measured with this checkout and the ``--against`` one in alternating fresh
    processes (``repeats`` rounds of one timed run each); the fastest round of each kept."""
    results = []
    for spec in specs:
        one = dict(spec, repeats=1)
        runs: Dict[str, List[Dict[str, Any]]] = {'this': [], 'against': []}
        for r in range(int(spec['repeats'])):
            for who, code in (('against', args.against), ('this', None)):
                print(f"measuring {spec['variant']} ({who}, round {r + 1}/{spec['repeats']}) ...",
                      file=sys.stderr, flush=True)
                runs[who].append(run_isolated(['segmentation', '--worker', json.dumps(one)],
                                              code=code))
        best = {who: min(rs, key=lambda x: x['sec_per_image']) for who, rs in runs.items()}
        best['this']['against'] = dict(best['against'], code=osp.abspath(args.against))
        best['this']['rounds'] = len(runs['this'])
        results.append(best['this'])
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return results


def _build_model(variant: str, device: torch.device, impl: Optional[str] = None):
    from vitamin_dense.engine.config import load_config
    from vitamin_dense.registry import MODELS, register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = load_config(osp.join(code_root(), MODEL_CONFIGS[variant]))
    cfg.model.backbone.weights = None
    cfg.model.setdefault('text_encoder', {})['weights'] = None
    cfg.model.text_encoder['disk_cache'] = False
    if impl:
        cfg.model.head.setdefault('pixel_decoder', {})['impl'] = impl
    return MODELS.build(cfg.model).to(device).eval()


def _install_stages(timer: StageTimer, model) -> None:
    """Wrap the stages of FC-CLIP inference (those the code measured has)."""
    import importlib
    segmentor = importlib.import_module(type(model).__module__)
    msda = importlib.import_module('vitamin_dense.heads.ms_deform_attn')
    head = model.head
    timer.wrap(model.backbone, 'forward', 'backbone')
    timer.wrap(head.pixel_decoder, 'forward', 'pixel decoder')
    for module in head.pixel_decoder.modules():
        if type(module).__name__ == 'MSDeformAttn':
            timer.wrap(module, 'forward', 'deformable attention', 'pixel decoder')
    timer.wrap(msda, 'ms_deform_attn', 'sampling', 'deformable attention')
    timer.wrap(head.transformer_decoder, 'forward', 'transformer decoder')
    timer.wrap(head.transformer_decoder, 'predict_masks', 'mask prediction',
               'transformer decoder')
    timer.wrap(head, 'in_vocab_logits', 'in-vocabulary classifier')
    timer.wrap(head, 'out_vocab_logits', 'out-of-vocabulary classifier')
    timer.wrap(segmentor, 'geometric_ensemble', 'ensemble')
    timer.wrap(model, 'postprocess', 'post-processing')
    for name in ('semantic_inference', 'panoptic_inference', 'instance_inference'):
        timer.wrap(segmentor, name, name.split('_')[0], 'post-processing')


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Build one variant's segmentor and time full inference on one image."""
    from mmengine.structures import BaseDataElement

    from vitamin_dense.apis import resolve_device
    from vitamin_dense.backbones import count_windows
    if spec.get('threads'):
        torch.set_num_threads(int(spec['threads']))
    device = resolve_device(spec.get('device', 'auto'))
    torch.manual_seed(0)  # the same random weights in every process (and checkout): how
    # many queries pass post-processing's thresholds, hence its work, depends on them
    model = _build_model(spec['variant'], device, spec.get('impl'))
    k = int(spec['num_classes'])
    model.set_vocabulary([f'class {i}' for i in range(k)], 'test')
    start = now()
    model.class_embeddings('test')  # text encoding, cached from here on
    text_seconds = now() - start
    h, w = spec['size']
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)

    def predict():
        with torch.inference_mode(), precision_context(device, spec.get('precision')):
            sample = BaseDataElement(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
            data = model.data_preprocessor(dict(inputs=[image.to(device)],
                                                data_samples=[sample]), False)
            return model.predict(**data)

    timer = StageTimer(device)
    if spec.get('breakdown'):
        _install_stages(timer, model)
    runs = []
    with PeakMemory(device) as memory:
        for _ in range(int(spec['warmup'])):
            predict()
        for _ in range(int(spec['repeats'])):
            timer.reset()
            start = now()
            predict()
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            runs.append((now() - start, timer.snapshot()))
    timer.restore()
    times = [t for t, _ in runs]
    best, stages = best_run(runs)
    bb = model.backbone
    stride = model.test_cfg['stride'] or bb.test_stride
    return {
        'variant': spec['variant'], 'model': bb.model_name, 'window': bb.window_size,
        'stride': stride, 'windows': count_windows(h, w, bb.window_size, stride),
        'queries': model.head.num_queries, 'classes': k, 'size': f'{h}x{w}',
        'sec_per_image': best, 'sec_median': statistics.median(times),
        'images_per_s': 1.0 / best, 'peak_extra_mb': memory.extra_mb,
        'max_rss_mb': max_rss_bytes() / MB if device.type == 'cpu' else None,
        'text_seconds': text_seconds, 'repeats': len(times), 'device': device_name(device),
        'precision': spec.get('precision') or 'fp32', 'stages': stages if spec.get('breakdown')
        else None, 'code': code_root(),
        'impl': _sampler(model, device),
    }


def _sampler(model, device: torch.device) -> Optional[str]:
    """How the deformable attention samples: 'mmcv', 'gather' or 'grid_sample'."""
    import importlib
    msda = importlib.import_module('vitamin_dense.heads.ms_deform_attn')
    module = next((m for m in model.head.pixel_decoder.modules()
                   if type(m).__name__ == 'MSDeformAttn'), None)
    impl = getattr(module, 'impl', None)
    if impl == 'auto':
        impl = 'mmcv' if msda.mmcv_kernel_available(device) else 'pytorch'
    if impl == 'pytorch':  # the gather since it exists; grid_sample before
        impl = 'gather' if hasattr(msda, 'ms_deform_attn_grid_sample') else 'grid_sample'
    return impl


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
            stamps.append(now())

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(osp.join(code_root(), MODEL_CONFIGS['Tiny']))
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
    for r in inference:
        if r.get('against'):
            r['base_sec'] = r['against']['sec_per_image']
            r['ratio'] = r['sec_per_image'] / r['base_sec']
    if inference:
        r0 = inference[0]
        lines.append(f"FC-CLIP inference (semantic + panoptic + instance), {r0['size']} image, "
                     f"{r0['classes']} classes, random weights, device: {r0['device']}")
        lines.append(format_table(inference, [
            ('variant', 'variant', None), ('model', 'model', None), ('window', 'window', None),
            ('stride', 'stride', None), ('windows', 'windows', None),
            ('queries', 'queries', None), ('sec_per_image', 's/img', '{:.2f}'),
            ('images_per_s', 'img/s', '{:.3f}'), ('peak_extra_mb', 'peak MB', '{:.0f}'),
            ('text_seconds', 'text s (once)', '{:.2f}')]
            + ([('base_sec', 'baseline s/img', '{:.2f}'), ('ratio', 'x baseline', '{:.2f}x')]
               if any(r.get('against') for r in inference) else [])))
    for r in results:
        if r.get('train'):
            lines.append('')
            lines.append(f"Training, {r['config']} (batch {r['batch']}), device: {r['device']}: "
                         f"{r['iters_per_s']:.2f} it/s ({r['sec_per_iter']:.2f} s/it, "
                         f"{r['images_per_s']:.1f} img/s over {r['iters']} iterations), "
                         f"peak {r['peak_extra_mb']:.0f} MB above the start")
    for r in inference:
        if r.get('stages') is not None:
            lines.append('')
            lines.extend(breakdown_report(r))
    lines.append('')
    lines.append(memory_footnote(results, isolated))
    return '\n'.join(lines)


def _stage_labels(r: Dict[str, Any]) -> Dict[str, str]:
    return {'backbone': f"backbone ({r['windows']} windows at stride {r['stride']} + stitching)",
            'sampling': f"sampling ({r.get('impl') or '?'})"}


def breakdown_report(r: Dict[str, Any]) -> List[str]:
    """The stage table of one measurement (and of its ``--against`` baseline)."""
    other = r.get('against')
    lines = [f"Where the time goes: {r['variant']} ({r['model']}), {r['size']}, {r['classes']} "
             f"classes, {r['precision']}, device: {r['device']}; fastest of "
             f"{r.get('rounds', r['repeats'])} runs"
             + (', CPU seconds' if os.environ.get(CLOCK_ENV) == 'cpu' else '')
             + (f", side by side with {other['code']}" if other else '')]
    rows = stage_rows(r['stages'], r['sec_per_image'], _stage_labels(r))
    if other and other.get('stages') is not None:
        base = {row['key']: row for row in stage_rows(other['stages'], other['sec_per_image'])}
        for row in rows:
            b = base.get(row['key'])
            row['base'] = b['seconds'] if b else None
            row['ratio'] = row['seconds'] / b['seconds'] if b and b['seconds'] > 0 else None
        parents = {st['stage']: st['parent'] for st in other['stages']}
        for key, b in base.items():  # stages only the baseline has, under their parent
            keys = [row['key'] for row in rows]
            if key in keys:
                continue
            at = len(rows) - 2  # before 'other' and 'total', or after the parent's stages
            if parents.get(key) in keys:
                at = keys.index(parents[key]) + 1
                while at < len(rows) and rows[at]['key'] in base and \
                        parents.get(rows[at]['key']) == parents[key]:
                    at += 1
            rows.insert(at, dict(stage=b['stage'] + ' (baseline only)', key=key,
                                 base=b['seconds'], share=None, seconds=None, ratio=None))
        columns = [('stage', 'stage', None), ('base', 'baseline s', '{:.2f}'),
                   ('seconds', 's', '{:.2f}'), ('share', 'share', '{:.0%}'),
                   ('ratio', 'x baseline', '{:.2f}x')]
    else:
        columns = [('stage', 'stage', None), ('seconds', 's', '{:.2f}'),
                   ('share', 'share', '{:.0%}')]
    lines.append(format_table(rows, columns))
    lines.append('(indented stages: time inside the stage above, share of it)')
    return lines
