"""Inference precision: float32, or bfloat16 autocast (GPUs with bf16 tensor cores).

Every model runs its inference inside :func:`inference_autocast`: with
``'bf16'`` matrix products and convolutions run in bfloat16 while the parts
that need the range or the precision stay in float32 (the sliding window
stitches in float32, the pixel decoder's deformable encoder runs in float32 as
FC-CLIP's does, post-processing works on float32 probabilities). On a CPU
without bf16 instructions bf16 is several times *slower* than float32: it is
meant for GPUs.
"""
from __future__ import annotations

from typing import Union

import torch

from ..errors import ConfigError

PRECISIONS = ('fp32', 'bf16')


def check_precision(precision: str) -> str:
    """``'fp32'`` or ``'bf16'`` (one-line error otherwise)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    return precision


def inference_autocast(device: Union[str, torch.device], precision: str = 'fp32'
                       ) -> torch.autocast:
    """The autocast context of ``precision`` on ``device`` (disabled for ``'fp32'``)."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=torch.bfloat16,
                          enabled=check_precision(precision) == 'bf16')


__all__ = ['PRECISIONS', 'check_precision', 'inference_autocast']
