"""Open-vocabulary segmentation of images with ViTamin (training-free by default).

    python demo/segment.py [IMAGE|DIR|VIDEO ...] --vocab "cat,dog" [--model ViTamin-L-336]
        [--weights datacomp1b|FILE|hf-hub:ORG/REPO] [--random-init] [--stride PX]
        [--threshold P] [--templates vild|imagenet|single|FILE] [--out PATH] [--device auto]
    python demo/segment.py [IMAGE|DIR ...] --vocab "cat,dog" --checkpoint CKPT [--config CFG]
        [--task semantic|panoptic|instance] [--threshold S] [--stride PX] [--out PATH]

Writes an overlay PNG per image (class colours over the photo, with a legend
giving each class's share of pixels; panoptic: one colour shade per segment;
instance: masks, boxes and scores) and prints the shares. With --checkpoint
the trained FC-CLIP head segments (semantic, panoptic or instance); without it
the training-free dense CLIP map does (semantic).
"""
from __future__ import annotations

import argparse
import logging
import os
import os.path as osp
import sys
import time
from typing import List, Optional, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
if 'vitamin_dense' not in sys.modules:  # --help and input errors before the heavy imports
    os.environ['VITAMIN_DENSE_LAZY_IMPORT'] = '1'

from vitamin_dense.utils.cli import output_paths as cli_output_paths  # noqa: E402
from vitamin_dense.utils.cli import (DEMO_FLAGS_HELP, OneLineArgumentParser,  # noqa: E402
                                     add_demo_arguments, check_demo_arguments,
                                     check_vocabulary_spec, collect_images, load_toolkit,
                                     quiet_third_party_logs, run_cli)

EPILOG = DEMO_FLAGS_HELP + """
segmentation (this demo):
  --threshold          semantic labels: pixels whose best class probability is below
                       it are "none of these" (default: off, every pixel gets a class);
                       --task panoptic / instance: also segments and instances scoring
                       below it are dropped (default: all the model returns), in the
                       picture and in the listing alike
  --task               semantic (default), panoptic or instance (needs --checkpoint)
  --save-pred          writes <name>_labels.png (16-bit: 0 = none, k+1 = class k) and
                       <name>_labels.json (names, shares, segments or instances)

weights:
  Without --checkpoint the default, ViTamin-L-336 with 'datacomp1b', is
  downloaded from the Hugging Face hub on first use. Offline, download the
  open_clip checkpoint elsewhere and pass --weights /path/to/model.safetensors
  (.pt/.bin files are read with weights_only=True). A checkpoint written by
  tools/train.py holds every weight (backbone and text tower included) and the
  training vocabulary: nothing is downloaded. Classes named like a training
  class keep its thing/stuff kind and count as seen; other classes are things,
  unseen.

examples:
  python demo/segment.py --vocab "cat,grass,sky" --random-init --model ViTamin-Tiny
  python demo/segment.py street.jpg --vocab "person; car; road; sky" --task panoptic \\
      --checkpoint work_dirs/vitamin_l_coco/iter_368750.pth
  python demo/segment.py photos/ --vocab "person; car, truck; tree" --out out/
  python demo/segment.py street.jpg --vocab classes.txt --threshold 0.4 --stride 112
"""


def build_parser() -> argparse.ArgumentParser:
    """The shared demo flags (``add_demo_arguments``) plus this demo's own."""
    parser = OneLineArgumentParser(
        description=__doc__.split('\n\n')[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = add_demo_arguments(parser, 'segment')
    groups['model'].add_argument('--task', choices=('semantic', 'panoptic', 'instance'),
                                 default='semantic',
                                 help='what to output (panoptic and instance need --checkpoint; '
                                      'default: %(default)s)')
    groups['model'].add_argument('--stride', type=int, default=None,
                                 help='sliding-window stride in px, a multiple of 16 (default: '
                                      'half the window; smaller is slower and smoother)')
    groups['model'].add_argument('--templates', default='vild',
                                 help="prompt templates: 'vild' (14), 'imagenet' (80), 'single', "
                                      "or a file with one template per line containing '{}'")
    groups['model'].add_argument('--max-side', type=int, default=2048,
                                 help='images with a longer side are segmented on a shrunk copy '
                                      'and the labels mapped back (default: %(default)s; 0 = '
                                      'never)')
    groups['output'].add_argument('--alpha', type=float, default=0.5, help='overlay opacity')
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.vocab is None:
        parser.error('the following arguments are required: --vocab')
    return args


def output_paths(images: Sequence[str], out: str) -> List[str]:
    """Where each image's picture goes (unique names in a directory, or one file)."""
    return cli_output_paths(images, out, 'segment')


def read_templates(value: str):
    """A template set name, or a file with one ``{}`` template per line."""
    from vitamin_dense.errors import ConfigError
    if osp.isfile(value):
        with open(value, encoding='utf-8') as f:
            lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]
        bad = [ln for ln in lines if ln.count('{}') != 1]
        if not lines or bad:
            raise ConfigError(f"template file {value} must hold lines with exactly one '{{}}'"
                              + (f" (bad: '{bad[0]}')" if bad else ''))
        return lines
    from vitamin_dense.text.templates import TEMPLATE_SETS
    if value not in TEMPLATE_SETS:
        raise ConfigError(f"unknown templates '{value}': use {', '.join(TEMPLATE_SETS)} or a "
                          "file of templates with '{}'")
    return value


def check_arguments(args: argparse.Namespace) -> bool:
    """Every flag that can be wrong, before any heavy import; whether a trained head is used."""
    from vitamin_dense.errors import ConfigError
    trained = check_demo_arguments(args)
    if not trained and args.task != 'semantic':
        raise ConfigError(f'--task {args.task} needs a trained model (--checkpoint); the '
                          'training-free model gives semantic labels')
    if trained and args.templates != 'vild':
        raise ConfigError('--templates does not apply with --checkpoint: the config names the '
                          "model's templates")
    if not 0 <= args.alpha <= 1:
        raise ConfigError(f'--alpha {args.alpha} is not in [0, 1]')
    return trained


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    trained = check_arguments(args)
    check_vocabulary_spec(args.vocab)  # vocabulary errors before any model loads
    templates = read_templates(args.templates)
    images = collect_images(args.inputs, args.recursive)
    outputs = output_paths(images, args.out)
    _configure_logging(args.verbose)
    load_toolkit()
    from vitamin_dense.apis import Segmenter
    from vitamin_dense.errors import VitaminDenseError
    from vitamin_dense.text import parse_vocabulary

    vocab = parse_vocabulary(args.vocab)
    threshold = args.threshold or None  # 0: every pixel gets a class, as without a threshold
    if trained:
        segmenter = Segmenter(predictor='fcclip', config=args.config, checkpoint=args.checkpoint,
                              task=args.task, device=args.device, stride=args.stride,
                              threshold=threshold, max_side=args.max_side or None,
                              progress=True)
    else:
        weights = None if args.random_init else (args.weights or 'datacomp1b')
        segmenter = Segmenter(args.model or 'ViTamin-L-336', weights=weights,
                              device=args.device, stride=args.stride, templates=templates,
                              threshold=threshold, max_side=args.max_side or None,
                              progress=True)
    from vitamin_dense.apis.video import is_video_path
    video = len(images) == 1 and is_video_path(images[0])
    describe = getattr(segmenter.predictor, 'describe', None)
    what = describe() if callable(describe) else getattr(segmenter.predictor, 'name', 'model')
    _info(f'{what} on {segmenter.device}; {len(vocab)} classes, {len(images)} image'
          f'{"s" if len(images) > 1 else ""}')
    if args.random_init:
        _info('random weights: the masks are meaningless (smoke test)')
    if video:  # annotated video + per-frame JSON, frames streamed (vitamin_dense/apis/video.py)
        from vitamin_dense.apis.video import segment_video
        done = segment_video(segmenter, images[0], vocab, args.out, args.frame_stride,
                             threshold=threshold, alpha=args.alpha)
        print(f"{images[0]}: {done['frames']} frames -> {done['video']}, {done['json']}")
        return 0

    many = len(images) > 1
    iterator = list(zip(images, outputs))
    bar = None
    if many:
        from tqdm import tqdm
        bar = tqdm(iterator, desc='images', unit='img', file=sys.stderr)
        iterator = bar
    failures = 0
    for image, out in iterator:
        start = time.perf_counter()
        try:
            result = segmenter(image, vocab)
            result.save_overlay(out, alpha=args.alpha)
            if args.save_pred:
                result.save_labels(osp.splitext(out)[0].removesuffix('_segment') + '_labels.png')
        except VitaminDenseError as exc:
            if not many:
                raise
            failures += 1
            _write(f'error: {image}: {exc}', bar, err=True)
            continue
        _write(_report(image, out, result, time.perf_counter() - start), bar)
    if failures:
        _write(f'{failures} of {len(images)} images failed', bar, err=True)
        return 1
    return 0


def _report(image: str, out: str, result, seconds: float) -> str:
    h, w = result.size
    meta = result.meta
    extra = ''
    if 'downscaled_from' in meta:
        ph, pw = meta['processed_size']
        extra = f', segmented at {pw}x{ph} (longer side > --max-side)'
    lines = [f'{image} ({w}x{h}, {meta.get("windows", "?")} windows{extra}, {seconds:.2f} s)'
             f' -> {out}']
    task = getattr(result, 'task', 'semantic')
    if task != 'semantic':
        lines.append('  semantic label map, share of pixels per class:')
    lines += ['  ' + line for line in result.summary().splitlines()]
    if task == 'panoptic':
        lines.append(f'  {len(result.segments)} panoptic segments (the overlay), share of pixels:')
        lines += [f"    {s['name']}{' (thing)' if s['isthing'] else ''}: {s['area']} px "
                  f"({100 * s['area'] / max(1, h * w):.1f}%), score {s['score']:.2f}"
                  for s in result.segments]
    elif task == 'instance' and result.instances is not None:
        inst = result.instances
        shown = min(10, len(inst['scores']))
        lines.append(f"  {len(inst['scores'])} instances (the overlay)"
                     + (f', the best {shown}:' if shown < len(inst['scores']) else ':'))
        lines += [f"    {result.class_names[int(l)]} {s:.2f} box "
                  f"{', '.join(f'{v:.0f}' for v in b)}"
                  for l, s, b in list(zip(inst['labels'], inst['scores'], inst['boxes']))[:10]]
    return '\n'.join(lines)


def _write(text: str, bar, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    if bar is not None:
        bar.write(text, file=stream)
    else:
        print(text, file=stream, flush=True)


def _info(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _configure_logging(verbose: bool) -> None:
    quiet_third_party_logs()
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s: %(message)s')
    logging.getLogger('vitamin_dense').setLevel(logging.INFO if verbose else logging.WARNING)
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')


if __name__ == '__main__':
    run_cli(main)
