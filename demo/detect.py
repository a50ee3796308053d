"""Open-vocabulary object detection with a trained ViTamin detector (OWL-style or F-ViT).

    python demo/detect.py [IMAGE|DIR|VIDEO ...] --vocab "cat,dog" --checkpoint CKPT [--config CFG]
        [--threshold S] [--out PATH] [--save-pred] [--device auto]
    python demo/detect.py [IMAGE|DIR ...] --query-image Q.jpg --query-box x1,y1,x2,y2
        --checkpoint CKPT
    python demo/detect.py [IMAGE|DIR ...] --vocab "cat,dog" --random-init [--model ViTamin-Tiny]

Writes a picture per image (boxes with class names and scores, and a legend)
and prints the detections; --save-pred also writes them as JSON.
"""
from __future__ import annotations

import argparse
import logging
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
if 'vitamin_dense' not in sys.modules:  # --help and input errors before the heavy imports
    os.environ['VITAMIN_DENSE_LAZY_IMPORT'] = '1'

from vitamin_dense.utils.cli import output_paths as cli_output_paths  # noqa: E402
from vitamin_dense.utils.cli import (DEMO_FLAGS_HELP, OneLineArgumentParser,  # noqa: E402
                                     add_demo_arguments, check_demo_arguments,
                                     check_vocabulary_spec, collect_images, load_toolkit,
                                     quiet_third_party_logs, run_cli)
from vitamin_dense.utils.defaults import DETECTION_THRESHOLD, EXEMPLAR_THRESHOLD  # noqa: E402

EPILOG = DEMO_FLAGS_HELP + f"""
detection (this demo):
  --threshold          minimum box score; default {DETECTION_THRESHOLD} for --vocab and \
{EXEMPLAR_THRESHOLD} for
                       exemplar queries (their scores live near 1), 0 with --random-init
  --all-labels         keep every (box, class) pair above the threshold; by default a
                       box carries one label (its best; class-agnostic NMS at --nms-iou)
  --checkpoint         an OWL detector or a Sliding F-ViT (configs/ov_det/...)
  --save-pred          writes <name>_detect.json (boxes in original-image pixels)

one-shot detection (instead of --vocab; OWL checkpoints):
  --query-image Q --query-box x1,y1,x2,y2 [--query-box ...] [--query-name NAME ...]
  Each box (pixels of Q) becomes a query: the detector finds objects like it.

examples:
  python demo/detect.py photo.jpg --vocab "cat,dog" --checkpoint work_dirs/owl/iter_45000.pth
  python demo/detect.py scene.jpg --query-image cat.jpg --query-box 30,40,200,220 \\
      --checkpoint work_dirs/owl/iter_45000.pth
  python demo/detect.py --vocab "cat" --random-init --model ViTamin-Tiny
"""


def build_parser() -> argparse.ArgumentParser:
    """The shared demo flags (``add_demo_arguments``) plus this demo's own."""
    parser = OneLineArgumentParser(description=__doc__.split('\n\n')[0], epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = add_demo_arguments(parser, 'detect')
    what = groups['what']
    what.add_argument('--query-image', help='image holding the exemplar boxes')
    what.add_argument('--query-box', action='append', default=[], metavar='x1,y1,x2,y2',
                      help='exemplar box in query-image pixels (repeat for several)')
    what.add_argument('--query-name', action='append', default=[], metavar='NAME',
                      help='display name of each exemplar (default: exemplar 1, 2, ...)')
    out = groups['output']
    out.add_argument('--all-labels', action='store_true',
                     help='keep every label of a box (default: one label per box)')
    out.add_argument('--max-detections', type=int, default=None,
                     help='boxes per image at most (default 100; 10 with --random-init)')
    out.add_argument('--nms-iou', type=float, default=0.5,
                     help='NMS IoU threshold; 0 disables NMS (default: %(default)s)')
    out.add_argument('--input-size', type=int, default=None,
                     help="longer image side fed to the network (default: the config's test "
                          'size, else 896)')
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def output_paths(images: Sequence[str], out: str) -> List[str]:
    """Where each image's picture goes (unique names in a directory, or one file)."""
    return cli_output_paths(images, out, 'detect')


def check_inputs(args: argparse.Namespace):
    """Everything about the request that can be wrong, before any model loads."""
    from vitamin_dense.errors import ConfigError
    one_shot = bool(args.query_image or args.query_box)
    if args.vocab is not None and one_shot:
        raise ConfigError('give either --vocab or --query-image/--query-box, not both')
    if args.vocab is None and not one_shot:
        raise ConfigError('nothing to detect: give --vocab "cat,dog" or --query-image IMG '
                          '--query-box x1,y1,x2,y2')
    check_vocabulary_spec(args.vocab)
    images = collect_images(args.inputs, args.recursive)  # missing files fail here
    if one_shot:
        if not args.query_image:
            raise ConfigError('--query-box needs --query-image (the image the box is drawn on)')
        if not args.query_box:
            raise ConfigError('--query-image needs at least one --query-box x1,y1,x2,y2')
        if not osp.isfile(args.query_image):
            from vitamin_dense.errors import ImageReadError
            raise ImageReadError(f'query image not found: {args.query_image}')
        if args.query_name and len(args.query_name) != len(args.query_box):
            raise ConfigError(f'{len(args.query_name)} --query-name for {len(args.query_box)} '
                              '--query-box: give one name per box (or none)')
        if args.query_name:
            from vitamin_dense.text.vocabulary import parse_vocabulary
            parse_vocabulary(list(args.query_name))  # empty or repeated names
    if args.max_detections is not None and args.max_detections < 1:
        raise ConfigError('--max-detections must be at least 1')
    if not 0 <= args.nms_iou <= 1:
        raise ConfigError(f'--nms-iou {args.nms_iou} is not in [0, 1]')
    if not check_demo_arguments(args, allow_config_only=True) and not args.random_init:
        raise ConfigError('the detector needs trained weights: pass --checkpoint CKPT (train '
                          'one with tools/train.py configs/ov_det/...), or --random-init for a '
                          'smoke run with random weights')
    return images


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    paths = check_inputs(args)
    outputs = output_paths(paths, args.out)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    quiet_third_party_logs()
    load_toolkit()
    from vitamin_dense.apis import Detector
    from vitamin_dense.apis.detector import check_query_box, parse_box
    from vitamin_dense.apis.video import is_video_path
    from vitamin_dense.errors import ConfigError
    from vitamin_dense.text import parse_vocabulary
    from vitamin_dense.utils.image_io import read_image
    vocab = parse_vocabulary(args.vocab) if args.vocab is not None else None
    # corrupt files fail before the model loads; videos are read frame by frame later
    images = [read_image(path) for path in paths if not is_video_path(path)]
    if len(images) != len(paths) and (len(paths) > 1 or vocab is None):
        raise ConfigError('a video goes alone (no other IMAGE) and with --vocab')
    query = boxes = None
    if args.query_image:
        query = read_image(args.query_image)
        boxes = [check_query_box(parse_box(b), query.shape[:2], args.query_image)
                 for b in args.query_box]
    threshold = args.threshold
    if threshold is None:
        threshold = 0.0 if args.random_init else (DETECTION_THRESHOLD if vocab is not None
                                                  else EXEMPLAR_THRESHOLD)
    max_det = args.max_detections or (10 if args.random_init else 100)
    kwargs = {} if args.input_size is None else dict(input_size=args.input_size)
    detector = Detector(config=args.config, checkpoint=args.checkpoint,
                        model=args.model or (None if (args.config or args.checkpoint)
                                             else 'ViTamin-L-336'),
                        weights=args.weights or 'datacomp1b', device=args.device,
                        threshold=threshold, query_threshold=threshold,
                        max_detections=max_det, nms_iou=args.nms_iou or None,
                        one_label_per_box=not args.all_labels, random_init=args.random_init,
                        **kwargs)
    print(f'{detector!r}', file=sys.stderr)
    if args.random_init:
        print('random weights: the boxes are meaningless (smoke test)', file=sys.stderr)
    if not images:  # one video (vitamin_dense/apis/video.py)
        from vitamin_dense.apis.video import detect_video
        done = detect_video(detector, paths[0], vocab, args.out, args.frame_stride)
        print(f"{paths[0]}: {done['frames']} frames -> {done['video']}, {done['json']}")
        return 0
    call = dict(vocabulary=vocab) if vocab is not None else dict(
        query_image=query, query_boxes=boxes, query_names=args.query_name or None)
    # one call: exemplar queries are embedded once, images run batch_size at a time
    results = detector.detect_batch(images, **call)
    for path, result, out in zip(paths, results, outputs):
        result.source = path
        written = result.save_visualization(out, title=osp.basename(path))
        if args.save_pred:
            result.save_json(osp.splitext(out)[0] + '.json')
        print(f'{path}: {len(result)} detection{"s" if len(result) != 1 else ""} -> {written}')
        if len(result):
            print('\n'.join('  ' + line for line in result.summary().splitlines()))
    return 0


if __name__ == '__main__':
    run_cli(main)
