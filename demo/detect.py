"""Open-vocabulary object detection with the OWL-style ViTamin detector.

    python demo/detect.py IMAGE [IMAGE ...] --vocab "cat,dog" --checkpoint CKPT [--config CFG]
        [--threshold 0.1] [--out PATH] [--device auto]
    python demo/detect.py IMAGE --query-image Q.jpg --query-box x1,y1,x2,y2 --checkpoint CKPT
    python demo/detect.py IMAGE --vocab "cat,dog" --random-init [--model ViTamin-Tiny]

Writes a picture per image (boxes with class names and scores, and a legend)
and prints the detections; --json also writes them as JSON.
"""
from __future__ import annotations

import argparse
import logging
import os.path as osp
import sys
from typing import List, Optional, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from vitamin_dense.utils.cli import output_paths as cli_output_paths  # noqa: E402
from vitamin_dense.utils.cli import (OneLineArgumentParser, quiet_third_party_logs,  # noqa: E402
                                     run_cli)


EPILOG = """\
vocabulary (--vocab):
  "cat,dog"            commas separate classes
  "kitten, cat; dog"   with a semicolon: semicolons separate classes, commas synonyms
  "dataset:coco"       a built-in data set vocabulary; a file path: one class per line

one-shot detection (instead of --vocab):
  --query-image Q --query-box x1,y1,x2,y2 [--query-box ...] [--query-name NAME ...]
  Each box (pixels of Q) becomes a query: the detector finds objects like it.

model:
  --checkpoint CKPT [--config CFG]  a trained OwlDetector (the config is read from the
                                    checkpoint when not given; train with tools/train.py
                                    configs/ov_det/...)
  --random-init [--model NAME]      random weights: runs the whole path offline, the boxes
                                    mean nothing (shows the top --max-detections boxes)

examples:
  python demo/detect.py photo.jpg --vocab "cat,dog" --checkpoint work_dirs/owl/iter_45000.pth
  python demo/detect.py scene.jpg --query-image cat.jpg --query-box 30,40,200,220 \\
      --checkpoint work_dirs/owl/iter_45000.pth
  python demo/detect.py photo.jpg --vocab "circle,square" --random-init --model ViTamin-Tiny
"""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description=__doc__.split('\n\n')[0], epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('images', nargs='+', metavar='IMAGE', help='image files')
    what = parser.add_argument_group('what to detect (--vocab, or --query-image + --query-box)')
    what.add_argument('--vocab', help='class names (grammar below)')
    what.add_argument('--query-image', help='image holding the exemplar boxes')
    what.add_argument('--query-box', action='append', default=[], metavar='x1,y1,x2,y2',
                      help='exemplar box in query-image pixels (repeat for several)')
    what.add_argument('--query-name', action='append', default=[], metavar='NAME',
                      help='display name of each exemplar (default: exemplar 1, 2, ...)')
    model = parser.add_argument_group('model')
    model.add_argument('--config', help='OwlDetector config (configs/ov_det/...)')
    model.add_argument('--checkpoint', help='trained weights (runner checkpoint)')
    model.add_argument('--model', default=None,
                       help='ViTamin variant for --random-init without --config '
                            '(default: ViTamin-L-336)')
    model.add_argument('--weights', default='datacomp1b',
                       help='CLIP weights of a config-less model (only used with a checkpoint '
                            'that carries no config)')
    model.add_argument('--random-init', action='store_true',
                       help='random weights everywhere (smoke test; boxes are meaningless)')
    out = parser.add_argument_group('output')
    out.add_argument('--threshold', type=float, default=None,
                     help='minimum box score (default 0.1; 0 with --random-init)')
    out.add_argument('--max-detections', type=int, default=None,
                     help='boxes per image at most (default 100; 10 with --random-init)')
    out.add_argument('--nms-iou', type=float, default=0.5,
                     help='class-wise NMS IoU threshold; 0 disables NMS (default: %(default)s)')
    out.add_argument('--input-size', type=int, default=None,
                     help='longer image side fed to the network (default: the config\'s test '
                          'size, else 896)')
    out.add_argument('--out', default=osp.join('outputs', 'detect'),
                     help='output directory, or a .png/.jpg file for a single image '
                          '(default: %(default)s)')
    out.add_argument('--json', action='store_true', help='also write the detections as JSON')
    out.add_argument('--frame-stride', type=int, default=1,
                     help='a video as IMAGE: detect in every N-th frame (default: every frame)')
    out.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto')
    parser.add_argument('--verbose', action='store_true', help='log model set-up details')
    parser.add_argument('--debug', action='store_true',
                        help='show tracebacks instead of one-line errors')
    return parser.parse_args(argv)


def output_paths(images: Sequence[str], out: str) -> List[str]:
    """Where each image's picture goes (unique names in a directory, or one file)."""
    return cli_output_paths(images, out, 'detect')


def check_inputs(args: argparse.Namespace):
    """Everything about the request that can be wrong, before any model loads."""
    from vitamin_dense.apis import check_query_box, parse_box
    from vitamin_dense.errors import ConfigError
    from vitamin_dense.text import parse_vocabulary
    from vitamin_dense.utils.image_io import read_image
    one_shot = bool(args.query_image or args.query_box)
    if args.vocab is not None and one_shot:
        raise ConfigError('give either --vocab or --query-image/--query-box, not both')
    if args.vocab is None and not one_shot:
        raise ConfigError('nothing to detect: give --vocab "cat,dog" or --query-image IMG '
                          '--query-box x1,y1,x2,y2')
    vocab = parse_vocabulary(args.vocab) if args.vocab is not None else None
    from vitamin_dense.apis.video import is_video_path
    images = [read_image(path) for path in args.images  # missing / corrupt files fail here
              if not is_video_path(path)]  # videos are read frame by frame later
    if len(images) != len(args.images) and (len(args.images) > 1 or vocab is None):
        raise ConfigError('a video goes alone (no other IMAGE) and with --vocab')
    boxes = query = None
    if one_shot:
        if not args.query_image:
            raise ConfigError('--query-box needs --query-image (the image the box is drawn on)')
        if not args.query_box:
            raise ConfigError('--query-image needs at least one --query-box x1,y1,x2,y2')
        query = read_image(args.query_image)
        boxes = [check_query_box(parse_box(b), query.shape[:2], args.query_image)
                 for b in args.query_box]
        if args.query_name and len(args.query_name) != len(boxes):
            raise ConfigError(f'{len(args.query_name)} --query-name for {len(boxes)} '
                              '--query-box: give one name per box (or none)')
        if args.query_name:
            parse_vocabulary(list(args.query_name))
    if args.threshold is not None and not 0 <= args.threshold < 1:
        raise ConfigError(f'--threshold {args.threshold} is not a score in [0, 1)')
    if args.max_detections is not None and args.max_detections < 1:
        raise ConfigError('--max-detections must be at least 1')
    if not 0 <= args.nms_iou <= 1:
        raise ConfigError(f'--nms-iou {args.nms_iou} is not in [0, 1]')
    if not args.random_init and not args.checkpoint:
        raise ConfigError('the detector needs trained weights: pass --checkpoint CKPT '
                          '(train with tools/train.py configs/ov_det/...), or --random-init '
                          'for a smoke run with random weights')
    for path in (args.config, args.checkpoint):
        if path and not osp.isfile(path):
            from vitamin_dense.errors import WeightsError
            raise WeightsError(f'file not found: {path}')
    return vocab, images, query, boxes


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    quiet_third_party_logs()
    vocab, images, query, boxes = check_inputs(args)
    outputs = output_paths(args.images, args.out)
    from vitamin_dense.apis import Detector
    threshold = args.threshold if args.threshold is not None else (0.0 if args.random_init
                                                                   else 0.1)
    max_det = args.max_detections or (10 if args.random_init else 100)
    kwargs = {} if args.input_size is None else dict(input_size=args.input_size)
    detector = Detector(config=args.config, checkpoint=args.checkpoint,
                        model=args.model or (None if (args.config or args.checkpoint)
                                             else 'ViTamin-L-336'),
                        weights=args.weights, device=args.device, threshold=threshold,
                        max_detections=max_det, nms_iou=args.nms_iou or None,
                        random_init=args.random_init, **kwargs)
    print(f'{detector!r}', file=sys.stderr)
    if args.random_init:
        print('random weights: the boxes are meaningless (smoke test)', file=sys.stderr)
    if len(args.images) == 1 and vocab is not None and not images:  # a video (apis/video.py)
        from vitamin_dense.apis.video import detect_video
        done = detect_video(detector, args.images[0], vocab, args.out, args.frame_stride)
        print(f"{args.images[0]}: {done['frames']} frames -> {done['video']}, {done['json']}")
        return 0
    call = dict(vocabulary=vocab) if vocab is not None else dict(
        query_image=query, query_boxes=boxes, query_names=args.query_name or None)
    # one call: exemplar queries are embedded once, images run batch_size at a time
    results = detector.detect_batch(images, **call)
    for path, result, out in zip(args.images, results, outputs):
        result.source = path
        written = result.save_visualization(out, title=osp.basename(path))
        if args.json:
            result.save_json(osp.splitext(out)[0] + '.json')
        print(f'{path}: {len(result)} detection{"s" if len(result) != 1 else ""} -> {written}')
        if len(result):
            print('\n'.join('  ' + line for line in result.summary().splitlines()))
    return 0


if __name__ == '__main__':
    run_cli(main)
