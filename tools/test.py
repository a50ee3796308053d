"""Evaluate a checkpoint with an MMEngine config (MMDetection's tools/test.py conventions).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl]
                         [--show-dir DIR] [--cfg-options k=v ...] [--launcher pytorch]
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from vitamin_dense.utils.cli import (OneLineArgumentParser, quiet_third_party_logs,  # noqa: E402
                                     run_cli)


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file (or "none" to evaluate the '
                        'model as built, e.g. training-free)')
    parser.add_argument('--work-dir', help='where evaluation metrics are written')
    parser.add_argument('--out', help='dump predictions to this .pkl file')
    parser.add_argument('--show-dir', help='save visualised predictions here')
    parser.add_argument('--cfg-options', nargs='+', action=_DictAction, default={},
                        help='override config entries')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


class _DictAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction
        DictAction(self.option_strings, self.dest)(parser, namespace, values, option_string)


def main() -> int:
    args = parse_args()
    quiet_third_party_logs()
    from vitamin_dense.engine.config import build_runner, load_config
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.checkpoint.lower() != 'none':
        if not osp.isfile(args.checkpoint):
            from vitamin_dense.errors import WeightsError
            raise WeightsError(f'checkpoint not found: {args.checkpoint}')
        cfg.load_from = args.checkpoint
    else:
        cfg.load_from = None
    if args.show_dir:
        from vitamin_dense.engine.config import enable_show_dir
        enable_show_dir(cfg, args.show_dir)
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            from vitamin_dense.errors import ConfigError
            raise ConfigError('--out must end with .pkl or .pickle')
        cfg.test_evaluator = _with_dump(cfg.test_evaluator, args.out)
    runner = build_runner(cfg)
    metrics = runner.test()
    print(' '.join(f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}'
                   for k, v in (metrics or {}).items()))
    return 0


def _with_dump(evaluator, out: str):
    dump = dict(type='DumpResults', out_file_path=out)
    if isinstance(evaluator, (list, tuple)):
        return list(evaluator) + [dump]
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator['metrics'] = list(evaluator['metrics']) + [dump]
        return evaluator
    return [evaluator, dump]


if __name__ == '__main__':
    run_cli(main)
