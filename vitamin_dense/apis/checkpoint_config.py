"""The config of a trained model: the file given, else the one stored in its checkpoint.

MMEngine's runner stores the training config as text in ``meta['cfg']`` of
every checkpoint, so ``--checkpoint`` alone is enough for the demos and the
Python API (``Segmenter(predictor='fcclip', checkpoint=...)``, ``Detector``).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from ..errors import ConfigError

logger = logging.getLogger(__name__)


def config_from_checkpoint(checkpoint: dict):
    """The config text stored in a runner checkpoint, as an MMEngine ``Config`` (or None)."""
    text = (checkpoint.get('meta') or {}).get('cfg') if isinstance(checkpoint, dict) else None
    if not isinstance(text, str) or 'model' not in text:
        return None
    from mmengine.config import Config
    try:
        return Config.fromstring(text, '.py')
    except Exception as exc:  # a damaged or foreign meta: the caller asks for --config
        logger.warning('the config stored in the checkpoint cannot be read (%s)', exc)
        return None


def config_for_checkpoint(config: Optional[str], checkpoint: dict, source: str,
                          cfg_options: Optional[Dict[str, Any]] = None):
    """``config`` loaded (with ``cfg_options``) when given, else the checkpoint's own.

    Raises :class:`ConfigError` when neither exists.
    """
    if config is not None:
        from ..engine.config import load_config
        return load_config(config, cfg_options)
    cfg = config_from_checkpoint(checkpoint)
    if cfg is None:
        raise ConfigError(f'{source} carries no config (not written by tools/train.py?): pass '
                          'the config it was trained with, --config CFG')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


__all__ = ['config_from_checkpoint', 'config_for_checkpoint']
