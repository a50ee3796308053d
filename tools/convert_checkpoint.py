"""Convert a released reference checkpoint into a checkpoint of our model.

    python tools/convert_checkpoint.py fcclip SRC DST   # Sliding FC-CLIP (detectron2)
    python tools/convert_checkpoint.py fvit   SRC DST   # Sliding F-ViT (MMDetection 2.x)

Downloaded files are read without full unpickling
(:mod:`vitamin_dense.engine.foreign_checkpoint`); the result is a checkpoint
that ``tools/test.py`` and the demos load strictly.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from vitamin_dense.utils.cli import OneLineArgumentParser, run_cli  # noqa: E402

# subcommand -> module with ``add_arguments(parser)`` and ``convert(args) -> None``
CONVERTERS = {
    'fcclip': 'vitamin_dense.models.fcclip.convert',
    'fvit': 'vitamin_dense.models.fvit.convert',
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='kind', required=True, metavar='{' + ','.join(CONVERTERS) + '}')
    for kind, module in CONVERTERS.items():
        p = sub.add_parser(kind, help=f'convert a released {kind} checkpoint')
        p.add_argument('src', help='the released checkpoint')
        p.add_argument('dst', help='where to write our checkpoint')
        if importlib.util.find_spec(module) is not None:  # each converter lands on its own
            importlib.import_module(module).add_arguments(p)
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    if importlib.util.find_spec(CONVERTERS[args.kind]) is None:
        from vitamin_dense.errors import ConfigError
        raise ConfigError(f'no {args.kind} converter in this version ({CONVERTERS[args.kind]})')
    importlib.import_module(CONVERTERS[args.kind]).convert(args)
    return 0


if __name__ == '__main__':
    run_cli(main)
