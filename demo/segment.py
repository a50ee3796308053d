"""Open-vocabulary segmentation of images with ViTamin (training-free by default).

    python demo/segment.py [IMAGE|DIR ...] --vocab "cat,dog" [--model ViTamin-L-336]
        [--weights datacomp1b|FILE|hf-hub:ORG/REPO] [--random-init] [--stride PX]
        [--threshold P] [--templates vild|imagenet|single|FILE] [--out PATH] [--device auto]
    python demo/segment.py [IMAGE|DIR ...] --vocab "cat,dog" --config CONFIG --checkpoint CKPT
        [--task semantic|panoptic|instance] [--stride PX] [--out PATH] [--device auto]

Writes an overlay PNG per image (class colours over the photo, with a legend
giving each class's share of pixels; panoptic: one colour shade per segment;
instance: masks, boxes and scores) and prints the shares. With --config and
--checkpoint the trained FC-CLIP head segments (semantic, panoptic or
instance); without them the training-free dense CLIP map does (semantic).
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

from vitamin_dense.utils.cli import output_paths as cli_output_paths  # noqa: E402
from vitamin_dense.utils.cli import (OneLineArgumentParser, quiet_third_party_logs,  # noqa: E402
                                     run_cli)

SAMPLE_IMAGE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'vitamin_dense',
                        'assets', 'sample.jpg')

VOCAB_HELP = """\
vocabulary grammar (--vocab):
  "cat,dog"                commas separate classes (one name each)
  "kitten, cat; dog"       with a semicolon, semicolons separate classes and
                           commas separate synonyms of one class
                           (here: [kitten, cat] and [dog]); the first synonym
                           names the class; a single class with synonyms ends
                           with ';' ("kitten, cat;")
  "dataset:NAME"           the classes of a built-in data set vocabulary
  path/to/classes.txt      one class per line, synonyms separated by commas,
                           '#' starts a comment line
  Names are matched ignoring case, '_' and extra spaces; a name may appear
  only once. Synonyms are averaged into one text embedding per class.

weights:
  The default, ViTamin-L-336 with 'datacomp1b', is downloaded from the
  Hugging Face hub on first use. Offline, download the open_clip checkpoint
  elsewhere and pass --weights /path/to/open_clip_model.safetensors (.pt/.bin
  files are read with weights_only=True). --random-init runs everything with
  random weights (smoke tests; the masks are meaningless).

trained model (--config/--checkpoint):
  A checkpoint written by tools/train.py holds every weight (backbone and text
  tower included) and the training vocabulary: nothing is downloaded, and
  --model/--weights/--templates do not apply (the config names the model).
  Classes named like a training class keep its thing/stuff kind and count as
  seen; other classes are things, unseen.

examples:
  python demo/segment.py --vocab "cat,grass,sky" --random-init --model ViTamin-Tiny
  python demo/segment.py street.jpg --vocab "person; car; road; sky" --task panoptic \\
      --config configs/ov_seg/vitamin_l_coco.py --checkpoint work_dirs/vitamin_l_coco/iter_368750.pth
  python demo/segment.py photos/ --vocab "person; car, truck; tree" --out out/
  python demo/segment.py street.jpg --vocab classes.txt --threshold 0.4 --stride 112
"""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = OneLineArgumentParser(
        description=__doc__.split('\n\n')[0], epilog=VOCAB_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('images', nargs='*', metavar='IMAGE',
                        help='image files or directories (default: the bundled sample photo). '
                             'JPEG, PNG, TIFF, BMP, WebP...; grayscale, RGBA (composited over '
                             'white), 16-bit and EXIF-rotated images are handled')
    parser.add_argument('--vocab', required=True,
                        help='the classes to segment (grammar below)')
    parser.add_argument('--model', default='ViTamin-L-336',
                        help='open_clip ViTamin variant (default: %(default)s; ViTamin-Tiny '
                             'for fast smoke tests with --random-init)')
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument('--weights', default='datacomp1b',
                         help="pretrained tag, 'hf-hub:org/repo' or a local checkpoint file "
                              '(default: %(default)s)')
    weights.add_argument('--random-init', action='store_true',
                         help='no weights: random initialisation (smoke tests)')
    trained = parser.add_argument_group('trained model (FC-CLIP head)')
    trained.add_argument('--config', default=None,
                         help='model config of a trained segmentor (e.g. '
                              'configs/ov_seg/vitamin_l_coco.py)')
    trained.add_argument('--checkpoint', default=None,
                         help='its checkpoint (tools/train.py output; read weights-only)')
    trained.add_argument('--task', choices=('semantic', 'panoptic', 'instance'),
                         default='semantic',
                         help='what to output (panoptic and instance need --checkpoint; '
                              'default: %(default)s)')
    parser.add_argument('--stride', type=int, default=None,
                        help='sliding-window stride in px, a multiple of 16 (default: half '
                             'the window; smaller is slower and smoother)')
    parser.add_argument('--threshold', type=float, default=None,
                        help='"none of these": pixels whose best class probability is below '
                             'this stay unlabelled (default: off)')
    parser.add_argument('--templates', default='vild',
                        help="prompt templates: 'vild' (14), 'imagenet' (80), 'single', or a "
                             "file with one template per line containing '{}'")
    parser.add_argument('--out', default=osp.join('outputs', 'segment'),
                        help='output directory, or a file name (.png/.jpg) for a single '
                             'image (default: %(default)s)')
    parser.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto')
    parser.add_argument('--max-side', type=int, default=2048,
                        help='images with a longer side are segmented on a shrunk copy and '
                             'the labels mapped back (default: %(default)s; 0 = never)')
    parser.add_argument('--alpha', type=float, default=0.5, help='overlay opacity')
    parser.add_argument('--save-labels', action='store_true',
                        help='also write the label map as a 16-bit PNG (0 = none, k+1 = '
                             'class k) with a JSON of class names and shares')
    parser.add_argument('--frame-stride', type=int, default=1,
                        help='a video as IMAGE: segment every N-th frame (default: every frame)')
    parser.add_argument('--recursive', action='store_true',
                        help='look for images in sub-directories of directory arguments')
    parser.add_argument('--verbose', action='store_true', help='log model set-up details')
    parser.add_argument('--debug', action='store_true',
                        help='show tracebacks instead of one-line errors')
    return parser.parse_args(argv)


def collect_images(paths: Sequence[str], recursive: bool = False) -> List[str]:
    """Expand directories into their image files; keep files (checked later) in order."""
    from vitamin_dense.errors import ImageReadError
    from vitamin_dense.utils.image_io import list_images
    if not paths:
        return [SAMPLE_IMAGE]
    images: List[str] = []
    for path in paths:
        if osp.isdir(path):
            found = list_images(path, recursive=recursive)
            if not found:
                raise ImageReadError(f'directory {path} holds no image files (JPEG, PNG, '
                                     f'TIFF, ...){"" if recursive else "; try --recursive"}')
            images += found
        elif not osp.exists(path):
            raise ImageReadError(f'image not found: {path}')
        else:
            images.append(path)
    return images


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
    from vitamin_dense.text import TEMPLATE_SETS
    if value not in TEMPLATE_SETS:
        raise ConfigError(f"unknown templates '{value}': use {', '.join(TEMPLATE_SETS)} or a "
                          "file of templates with '{}'")
    return value


def check_trained_args(args: argparse.Namespace) -> bool:
    """Whether the trained head is used; one-line errors for inconsistent flags."""
    from vitamin_dense.errors import ConfigError
    if bool(args.config) != bool(args.checkpoint):
        raise ConfigError('--config and --checkpoint go together (a trained model needs both); '
                          'leave both out for the training-free model')
    if not args.checkpoint:
        if args.task != 'semantic':
            raise ConfigError(f'--task {args.task} needs a trained model (--config and '
                              '--checkpoint); the training-free model gives semantic labels')
        return False
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise ConfigError(f'{what} not found: {path}')
    given = [flag for flag, used in (('--random-init', args.random_init),
                                     ('--model', args.model != 'ViTamin-L-336'),
                                     ('--weights', args.weights != 'datacomp1b'),
                                     ('--templates', args.templates != 'vild')) if used]
    if given:
        raise ConfigError(f"{', '.join(given)} do(es) not apply with --checkpoint: the config "
                          'names the model and the checkpoint holds its weights')
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    _configure_logging(args.verbose)
    from vitamin_dense.apis import Segmenter
    from vitamin_dense.errors import ConfigError, VitaminDenseError
    from vitamin_dense.text import parse_vocabulary

    vocab = parse_vocabulary(args.vocab)  # vocabulary errors before any model loads
    templates = read_templates(args.templates)
    images = collect_images(args.images, args.recursive)
    from vitamin_dense.apis.video import is_video_path
    video = len(images) == 1 and is_video_path(images[0])
    outputs = [] if video else output_paths(images, args.out)
    if args.threshold is not None and not 0 < args.threshold <= 1:
        raise ConfigError(f'--threshold {args.threshold} is not a probability in (0, 1]')
    if not 0 <= args.alpha <= 1:
        raise ConfigError(f'--alpha {args.alpha} is not in [0, 1]')
    trained = check_trained_args(args)
    if trained:
        segmenter = Segmenter(predictor='fcclip', config=args.config, checkpoint=args.checkpoint,
                              task=args.task, device=args.device, stride=args.stride,
                              threshold=args.threshold, max_side=args.max_side or None,
                              progress=True)
    else:
        weights = None if args.random_init else args.weights
        segmenter = Segmenter(args.model, weights=weights, device=args.device,
                              stride=args.stride, templates=templates,
                              threshold=args.threshold, max_side=args.max_side or None,
                              progress=True)
    describe = getattr(segmenter.predictor, 'describe', None)
    what = describe() if callable(describe) else getattr(segmenter.predictor, 'name', 'model')
    _info(f'{what} on {segmenter.device}; {len(vocab)} classes, {len(images)} image'
          f'{"s" if len(images) > 1 else ""}')
    if args.random_init:
        _info('random weights: the masks are meaningless (smoke test)')
    if video:  # annotated video + per-frame JSON, frames streamed (vitamin_dense/apis/video.py)
        from vitamin_dense.apis.video import segment_video
        done = segment_video(segmenter, images[0], vocab, args.out, args.frame_stride,
                             threshold=args.threshold, alpha=args.alpha)
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
            if args.save_labels:
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
        lines.append(f"  {len(inst['scores'])} instances, best:")
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
