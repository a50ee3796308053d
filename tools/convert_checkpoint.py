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
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if a in CONVERTERS), None)  # only its module is imported
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='kind', required=True, metavar='{' + ','.join(CONVERTERS) + '}')
    for kind in CONVERTERS:
        p = sub.add_parser(kind, help=f'convert a released {kind} checkpoint')
        p.add_argument('src', help='the released checkpoint')
        p.add_argument('dst', help='where to write our checkpoint')
        if kind == chosen:
            _converter(kind).add_arguments(p)
    return parser.parse_args(argv)


def _converter(kind: str):
    module = CONVERTERS[kind]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        from vitamin_dense.errors import ConfigError
        raise ConfigError(f'the {kind} converter ({module}) is not part of this version') from exc


def main() -> int:
    args = parse_args()
    _converter(args.kind).convert(args)
    return 0


if __name__ == '__main__':
    run_cli(main)
