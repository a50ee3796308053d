"""Train a model from an MMEngine config (MMDetection's tools/train.py conventions).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher pytorch]

Multi-GPU: ``torchrun --nproc_per_node=8 tools/train.py CONFIG --launcher pytorch``.
``--resume`` without a path resumes from the newest complete checkpoint in the
work dir (checkpoints are written atomically, so a killed run resumes cleanly).
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the newest checkpoint in the work dir')
    parser.add_argument('--cfg-options', nargs='+', action=_DictAction, default={},
                        help='override config entries, e.g. train_cfg.max_iters=100 '
                             '(data_root=DIR moves the data set)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (torchrun uses pytorch)')
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
    """File errors, before anything heavy is imported."""
    from vitamin_dense.errors import WeightsError
    from vitamin_dense.utils.packaged import resolve_config
    args.config = resolve_config(args.config)  # a file, or a packaged config's name
    if args.resume not in (None, 'auto'):
        if not osp.isfile(args.resume):
            raise WeightsError(f'checkpoint to resume from not found: {args.resume}')
        from vitamin_dense.utils.file_kind import describe_non_checkpoint
        kind = describe_non_checkpoint(args.resume)
        if kind is not None:
            raise WeightsError(f'{args.resume} is not a PyTorch checkpoint ({kind})')


def build_cfg(args: argparse.Namespace):
    from vitamin_dense.engine.config import load_config
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        from vitamin_dense.engine.config import enable_amp
        enable_amp(cfg)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            from vitamin_dense.errors import ConfigError
            raise ConfigError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main() -> int:
    args = parse_args()
    check_args(args)
    quiet_third_party_logs()
    cfg = build_cfg(args)
    from vitamin_dense.engine.config import (build_runner, check_data_files,
                                             use_checkpoint_weights)
    if cfg.get('load_from') and osp.isfile(cfg.load_from):
        use_checkpoint_weights(cfg, cfg.load_from)
    splits = ['train'] + (['val'] if cfg.get('val_cfg') and cfg.get('val_dataloader') else [])
    check_data_files(cfg, splits)  # before the model is built
    runner = build_runner(cfg)
    runner.train()
    return 0


if __name__ == '__main__':
    run_cli(main)
