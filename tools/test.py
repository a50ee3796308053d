"""Evaluate a checkpoint with an MMEngine config (MMDetection's tools/test.py conventions).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl]
                         [--show-dir DIR] [--score-thr S] [--cfg-options k=v ...]
                         [--launcher pytorch]

``--show-dir vis`` draws every test image's predictions (boxes, masks,
panoptic segments, semantic labels, with a legend) into
``work_dir/<timestamp>/vis/`` (MMDetection's layout; an absolute path is used
as is), for every config. A checkpoint written by tools/train.py holds every
weight: the config's pretrained weights are then not downloaded.
``--cfg-options data_root=DIR`` moves the whole data set (dataloaders and
evaluators); a missing data file stops the run, naming the expected layout,
before the model is built.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
if 'vitamin_dense' not in sys.modules:  # --help and input errors before the heavy imports
    os.environ['VITAMIN_DENSE_LAZY_IMPORT'] = '1'

from vitamin_dense.utils.cli import (OneLineArgumentParser, quiet_third_party_logs,  # noqa: E402
                                     run_cli)
from vitamin_dense.utils.defaults import VISUALIZATION_THRESHOLD  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file (or "none" to evaluate the '
                        'model as built, e.g. training-free)')
    parser.add_argument('--work-dir', help='where evaluation metrics are written')
    parser.add_argument('--out', help='dump predictions to this .pkl file')
    parser.add_argument('--show-dir', help='draw the predictions of every test image into '
                        'work_dir/<timestamp>/SHOW_DIR (or an absolute folder)')
    parser.add_argument('--score-thr', type=float, default=None,
                        help='--show-dir pictures: boxes and instances scoring below this are '
                             "not drawn (default: the config's hook; ours: "
                             f'{VISUALIZATION_THRESHOLD})')
    parser.add_argument('--cfg-options', nargs='+', action=_DictAction, default={},
                        help='override config entries (data_root=DIR moves the data set)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


class _DictAction(argparse.Action):
    """Lazy proxy to MMEngine's DictAction (keeps --help fast)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction
        DictAction(self.option_strings, self.dest)(parser, namespace, values, option_string)


def check_args(args: argparse.Namespace) -> None:
    """File and flag errors, before anything heavy is imported."""
    from vitamin_dense.errors import ConfigError, WeightsError
    from vitamin_dense.utils.packaged import resolve_config
    args.config = resolve_config(args.config)  # a file, or a packaged config's name
    if args.checkpoint.lower() != 'none':
        if not osp.isfile(args.checkpoint):
            raise WeightsError(f'checkpoint not found: {args.checkpoint}')
        from vitamin_dense.utils.file_kind import describe_non_checkpoint
        kind = describe_non_checkpoint(args.checkpoint)
        if kind is not None:
            raise WeightsError(f'{args.checkpoint} is not a PyTorch checkpoint ({kind}); pass the '
                               '.pth file tools/train.py wrote, or "none"')
    if args.out and not args.out.endswith(('.pkl', '.pickle')):
        raise ConfigError('--out must end with .pkl or .pickle')
    if args.score_thr is not None:
        if not args.show_dir:
            raise ConfigError('--score-thr sets the score cut of the --show-dir pictures: give '
                              '--show-dir too')
        if not 0 <= args.score_thr <= 1:
            raise ConfigError(f'--score-thr {args.score_thr} is not a score in [0, 1]')


def main() -> int:
    args = parse_args()
    check_args(args)
    quiet_third_party_logs()
    from vitamin_dense.engine.config import (build_runner, check_data_files, enable_show_dir,
                                             load_config, use_checkpoint_weights)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.checkpoint.lower() != 'none':
        cfg.load_from = args.checkpoint
        use_checkpoint_weights(cfg, args.checkpoint)
    else:
        cfg.load_from = None
    if args.show_dir:
        enable_show_dir(cfg, args.show_dir, args.score_thr)
    if args.out:
        cfg.test_evaluator = _with_dump(cfg.test_evaluator, args.out)
    check_data_files(cfg, ['test'])  # before the model is built
    runner = build_runner(cfg)
    metrics = runner.test()
    print(' '.join(f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}'
                   for k, v in (metrics or {}).items()))
    if args.show_dir:
        print(f'pictures: {osp.join(runner.work_dir, runner.timestamp, args.show_dir)}',
              file=sys.stderr)
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
