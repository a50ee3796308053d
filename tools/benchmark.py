"""Benchmarks of the toolkit: python tools/benchmark.py {backbone,segmentation,detection} [options].

Each subcommand is a module ``tools/benchmarks/<name>.py`` exposing
``add_arguments(parser)`` and ``run(args) -> int`` (its docstring's first line
is the subcommand's help). Adding a benchmark is adding such a file; shared
helpers (timing, peak-memory sampling, tables, sub-process isolation) live in
``tools/benchmarks/_common.py``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import os.path as osp
import pkgutil
import sys
from typing import Dict, Optional, Sequence

TOOLS = osp.dirname(osp.abspath(__file__))
# The vitamin_dense measured: this repository's, or (for the ``--against``
# baseline workers) another checkout's, named by VITAMIN_DENSE_CODE.
CODE = os.environ.get('VITAMIN_DENSE_CODE') or osp.dirname(TOOLS)
sys.path.insert(0, CODE)
sys.path.insert(0, TOOLS)               # the benchmarks package

from vitamin_dense.utils.cli import (OneLineArgumentParser, quiet_third_party_logs,  # noqa: E402
                                     run_cli)


def discover() -> Dict[str, object]:
    """Subcommand name -> module, for every public module of tools/benchmarks/."""
    import benchmarks
    found = {}
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        if info.name.startswith('_'):
            continue
        module = importlib.import_module(f'benchmarks.{info.name}')
        if hasattr(module, 'add_arguments') and hasattr(module, 'run'):
            found[info.name] = module
    return found


def build_parser(modules: Dict[str, object]) -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='benchmark', metavar='{' + ','.join(modules) + '}',
                                parser_class=OneLineArgumentParser)
    sub.required = True
    for name, module in modules.items():
        doc = (module.__doc__ or name).strip()
        p = sub.add_parser(name, help=doc.splitlines()[0], description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    quiet_third_party_logs()
    modules = discover()
    args = build_parser(modules).parse_args(argv)
    if getattr(args, 'clock', 'wall') == 'cpu':  # also for the worker processes
        from benchmarks._common import CLOCK_ENV
        os.environ[CLOCK_ENV] = 'cpu'
    return int(args._module.run(args) or 0)


if __name__ == '__main__':
    run_cli(main)
