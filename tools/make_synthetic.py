"""Generate the synthetic shapes data set (COCO panoptic + instances + semantic layouts).

    python tools/make_synthetic.py OUT_DIR [--splits train:200,val:50] [--image-size 128]
        [--seed 0] [--holdout default|none|star,sand] [--holdout-splits train]
        [--min-instances 1] [--max-instances 4] [--things circle,square,...]
        [--stuff sky,grass,...] [--image-ext jpg|png] [--force]

Deterministic: the same arguments give the same files. A split already made with
the same parameters is kept (``--force`` rewrites it). ``--holdout`` removes the
named classes from the splits in ``--holdout-splits`` (default: train) for
open-vocabulary tests; the other splits keep every class.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from vitamin_dense.utils.cli import run_cli  # noqa: E402


def _names(text: str):
    return tuple(n.strip() for n in text.split(',') if n.strip())


def parse_args(argv=None) -> argparse.Namespace:
    from vitamin_dense.datasets.synthetic import DEFAULT_STUFF, DEFAULT_THINGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='data root to write (e.g. data/synthetic)')
    parser.add_argument('--splits', default='train:200,val:50',
                        help='comma-separated NAME:NUM_IMAGES (default train:200,val:50)')
    parser.add_argument('--image-size', type=int, nargs='+', default=[128],
                        help='SIZE or HEIGHT WIDTH in pixels (default 128)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--things', type=_names, default=DEFAULT_THINGS,
                        help=f"thing classes (default {','.join(DEFAULT_THINGS)})")
    parser.add_argument('--stuff', type=_names, default=DEFAULT_STUFF,
                        help=f"stuff classes (default {','.join(DEFAULT_STUFF)})")
    parser.add_argument('--holdout', default='none',
                        help="classes kept out of --holdout-splits: 'default', 'none' or names")
    parser.add_argument('--holdout-splits', type=_names, default=('train',))
    parser.add_argument('--min-instances', type=int, default=1)
    parser.add_argument('--max-instances', type=int, default=4)
    parser.add_argument('--void-prob', type=float, default=0.1)
    parser.add_argument('--image-ext', choices=['jpg', 'png'], default='jpg')
    parser.add_argument('--force', action='store_true', help='rewrite splits that exist')
    return parser.parse_args(argv)


def _parse_splits(text: str):
    from vitamin_dense.datasets.errors import DatasetError
    splits = []
    for item in text.split(','):
        name, sep, num = item.strip().partition(':')
        if not sep or not name or not num.isdigit() or int(num) < 1:
            raise DatasetError(f"bad --splits entry '{item}': use NAME:NUM_IMAGES, "
                               'e.g. train:200,val:50')
        splits.append((name, int(num)))
    return splits


def main() -> int:
    args = parse_args()
    from vitamin_dense.datasets.errors import DatasetError
    from vitamin_dense.datasets.synthetic import SyntheticSpec, ensure_synthetic
    if len(args.image_size) not in (1, 2):
        raise DatasetError('--image-size takes SIZE or HEIGHT WIDTH')
    size = args.image_size[0] if len(args.image_size) == 1 else tuple(args.image_size)
    for split, num in _parse_splits(args.splits):
        spec = SyntheticSpec(
            num_images=num, image_size=size, seed=args.seed, thing_classes=args.things,
            stuff_classes=args.stuff,
            holdout=args.holdout if split in args.holdout_splits else (),
            min_instances=args.min_instances, max_instances=args.max_instances,
            void_prob=args.void_prob, image_ext=args.image_ext)
        start = time.time()
        ensure_synthetic(args.out_dir, split, spec, progress=True, force=args.force)
        held = f" (held out: {', '.join(spec.holdout)})" if spec.holdout else ''
        print(f'{split}: {num} images, {len(spec.classes)} classes{held} in '
              f'{time.time() - start:.1f} s -> {osp.abspath(args.out_dir)}')
    return 0


if __name__ == '__main__':
    run_cli(main)
