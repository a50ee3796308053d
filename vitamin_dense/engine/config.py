"""Loading configs and building runners with clear errors.

Used by ``tools/train.py``, ``tools/test.py`` and the tests, so that a missing
file, a syntax error or an override of a key that does not exist ends as one
line naming the problem.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

from ..errors import ConfigError


def load_config(path: str, cfg_options: Optional[Dict[str, Any]] = None):
    """``Config.fromfile`` plus override checking, with :class:`ConfigError` on failure."""
    from mmengine.config import Config
    if not os.path.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as exc:
        raise ConfigError(f'syntax error in {exc.filename or path} line {exc.lineno}: '
                          f'{exc.msg}') from exc
    except Exception as exc:  # mmengine wraps base-config problems in various types
        text = ' '.join(str(exc).split())[:300]
        raise ConfigError(f'cannot load config {path}: {text}') from exc
    if cfg_options:
        _check_override_paths(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    return cfg


def _check_override_paths(cfg, options: Dict[str, Any]) -> None:
    """Reject ``--cfg-options a.b.c=v`` whose parent ``a.b`` does not exist.

    A new leaf key is allowed (that is how options are added), but a typo in
    the path to it would otherwise silently create a dead branch.
    """
    for dotted in options:
        parts = dotted.split('.')
        node: Any = cfg
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not hasattr(node, 'keys') or part not in node:
                prefix = '.'.join(parts[:depth + 1])
                raise ConfigError(f"--cfg-options {dotted}: the config has no '{prefix}'")
            node = node[part]


def enable_amp(cfg) -> None:
    """Switch the optimizer wrapper to mixed precision (GPU only, as MMEngine's)."""
    import torch
    if not torch.cuda.is_available():
        raise ConfigError('--amp needs a CUDA GPU (MMEngine has no CPU mixed precision); '
                          'drop --amp to train in float32')
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        return
    if wrapper != 'OptimWrapper':
        raise ConfigError(f'--amp works with OptimWrapper, not {wrapper}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def enable_show_dir(cfg, show_dir: str) -> None:
    """Make the config's visualization hook draw test predictions into ``show_dir``."""
    hooks = cfg.get('default_hooks', {})
    if 'visualization' not in hooks:
        raise ConfigError('this config has no visualization hook (default_hooks.visualization); '
                          '--show-dir is not available for it')
    hooks.visualization.draw = True
    hooks.visualization.test_out_dir = os.path.abspath(show_dir)


def build_runner(cfg):
    """Build the config's runner (our :class:`VitaminRunner` unless it names another).

    The config's default scope is made current first: another OpenMMLab tool
    used earlier in the process (an mmdet inferencer, say) may have left its
    own scope current, where our runner is not registered.
    """
    from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
    from mmengine.registry import init_default_scope

    from ..registry import RUNNERS, register_all_modules
    register_all_modules(init_default_scope=False)
    cfg.setdefault('default_scope', 'vitamin_dense')
    init_default_scope(cfg.default_scope)
    runner_type = cfg.get('runner_type', 'VitaminRunner')
    if runner_type in RUNNERS.module_dict:
        # A scoped name resolves whatever the config's default scope is.
        cfg.runner_type = f'vitamin_dense.{runner_type}'
        return RUNNERS.build(cfg)
    cfg.runner_type = runner_type
    return MMENGINE_RUNNERS.build(cfg)
