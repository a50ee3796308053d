"""MMEngine Runner with atomic, weights-only-loadable checkpoints.

* Checkpoints are written to a temporary name and renamed into place, so a
  checkpoint file is either complete or absent, even if the run is killed.
* They hold only tensors and plain containers (see
  :mod:`vitamin_dense.engine.checkpoint`), so they load with
  ``torch.load(weights_only=True)``, in this runner and in a stock one.
* It resumes and loads checkpoints of any MMEngine runner (mmdet's or
  mmseg's ``tools/train.py``) without unpickling code: the weights-only
  unpickler is allowed exactly what MMEngine writes. Only a checkpoint
  inside the run's own work_dir may be fully unpickled if it holds more.
* ``--resume`` picks the newest complete checkpoint even when MMEngine's
  ``last_checkpoint`` pointer is missing or stale.
* ``torchrun ... --launcher pytorch`` also works on machines without CUDA
  (small CPU runs, CI): MMEngine's launcher assumes GPUs (``nccl``,
  ``cuda.set_device``, device ids for DDP); without CUDA the process group
  uses ``gloo`` and DDP wraps the CPU model. Everything else (samplers,
  gradient all-reduce, master-only logging and checkpoints) stays MMEngine's.
"""
from __future__ import annotations

import logging
import os
import os.path as osp

import torch
from mmengine.dist import is_distributed, master_only
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.runner import Runner

from ..registry import RUNNERS
from .checkpoint import (find_resume_checkpoint, from_plain, is_trusted_checkpoint,
                         load_runner_checkpoint, runner_safe_loading, to_plain)


def _logs_debug(logger: logging.Logger) -> bool:
    """Whether ``log_level='DEBUG'`` (MMEngine sets the level on the logger's handlers)."""
    return any(h.level <= logging.DEBUG for h in logger.handlers)


class _QuietStart(logging.Filter):
    """Drops start-up records a user cannot act on, unless the log level is DEBUG: the
    hook table (one block per stage) and MMEngine's notes about its own deprecated
    internals (``FileClient``, ``HardDiskBackend``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _logs_debug(logging.getLogger(record.name)) or record.levelno > logging.WARNING:
            return True
        message = str(record.msg)
        return not (message.startswith('Hooks will be executed in the following order')
                    or 'will be deprecated in future' in message)


@RUNNERS.register_module()
class VitaminRunner(Runner):
    """Runner used by every vitamin-dense config (``runner_type='VitaminRunner'``)."""

    def call_hook(self, fn_name: str, **kwargs) -> None:
        super().call_hook(fn_name, **kwargs)
        if fn_name == 'before_save_checkpoint':
            checkpoint = kwargs['checkpoint']
            for key in ('meta', 'message_hub', 'optimizer', 'param_schedulers'):
                if key in checkpoint:
                    checkpoint[key] = to_plain(checkpoint[key])

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        if not any(isinstance(f, _QuietStart) for f in logger.filters):
            logger.addFilter(_QuietStart())
        return logger

    def _log_env(self, env_cfg: dict) -> None:
        """One line (work dir, seed, processes) instead of MMEngine's hundreds.

        The system environment and the full config go to the DEBUG level; the
        config is also written to the work dir (``<config name>.py``) and into
        every checkpoint.
        """
        if _logs_debug(self.logger):
            super()._log_env(env_cfg)
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self.logger.info(f'{self.experiment_name}: work dir {self.work_dir}, seed {self.seed}, '
                         f'{self.world_size} process(es) on {device} (the full config is '
                         f'{osp.join(self.work_dir, self._config_file_name())}; '
                         "log_level='DEBUG' also logs it with the environment)")

    def _config_file_name(self) -> str:
        filename = getattr(self.cfg, 'filename', None)
        return osp.basename(filename) if filename else f'{self.timestamp}.py'

    def setup_env(self, env_cfg: dict) -> None:
        if self.distributed and not is_distributed() and not torch.cuda.is_available():
            if self.launcher != 'pytorch':
                from ..errors import ConfigError
                raise ConfigError(f'--launcher {self.launcher} needs CUDA devices; on a machine '
                                  'without them use torchrun with --launcher pytorch')
            backend = (env_cfg.get('dist_cfg') or {}).get('backend', 'gloo')
            if backend != 'gloo':
                logging.getLogger(__name__).warning(
                    'no CUDA device: the process group uses gloo instead of %s', backend)
            torch.distributed.init_process_group(backend='gloo')
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg, model):
        cpu_ddp = self.distributed and not torch.cuda.is_available() and (
            model_wrapper_cfg is None
            or model_wrapper_cfg.get('type', 'MMDistributedDataParallel')
            == 'MMDistributedDataParallel')
        if not cpu_ddp:
            return super().wrap_model(model_wrapper_cfg, model)
        model = revert_sync_batchnorm(model)  # SyncBN needs CUDA
        options = dict(model_wrapper_cfg or {})
        options.pop('type', None)
        options.setdefault('broadcast_buffers', False)
        options.setdefault('find_unused_parameters', self.cfg.get('find_unused_parameters', False))
        return MMDistributedDataParallel(module=model, device_ids=None, **options)

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs):
        local = kwargs.get('backend_args') is None and kwargs.get('file_client_args') is None \
            and '://' not in str(out_dir)
        if not local:
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        tmp_name = f'.{filename}.{os.getpid()}.partial'
        final = osp.join(out_dir, filename)
        tmp = osp.join(out_dir, tmp_name)
        try:
            super().save_checkpoint(out_dir, tmp_name, *args, **kwargs)
            with open(tmp, 'rb') as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)

    def load_or_resume(self) -> None:
        if self._has_loaded:
            return None
        if self._resume and self._load_from is None:
            found = find_resume_checkpoint(self.work_dir)
            if found is None:
                self.logger.info(f'no checkpoint in {self.work_dir} to resume from; '
                                 'training starts from the beginning')
                self._resume = False
            else:
                self.logger.info(f'resuming from {found}')
                self._load_from = found
        return super().load_or_resume()

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = False,
                        revise_keys=[(r'^module.', '')]):
        from mmengine.model import is_model_wrapper
        from mmengine.runner.checkpoint import _load_checkpoint_to_model
        if map_location == 'default':
            map_location = 'cpu'
        if osp.isfile(filename):
            checkpoint = load_runner_checkpoint(
                filename, map_location=map_location,
                trusted=is_trusted_checkpoint(filename, self.work_dir))
        else:  # URLs and other backends: MMEngine's loader, weights-only (never trusted)
            from mmengine.runner.checkpoint import _load_checkpoint
            with runner_safe_loading():
                checkpoint = _load_checkpoint(filename, map_location=map_location)
            if 'message_hub' in checkpoint:
                checkpoint['message_hub'] = from_plain(checkpoint['message_hub'])
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint
