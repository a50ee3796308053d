"""Learned global position maps added to the backbone levels (Sliding FC-CLIP).

Each sliding window sees only its own position embedding, so the stitched
features do not say where in the image a location is. The ViTamin Sliding
FC-CLIP port learns one full-size map per level (``res2 .. res5``, i.e. our
``s4 .. s32``), sized for its fixed 1344 x 1344 input (every image resized to
a longer side of 1344 and zero-padded to a square), and adds them to the
backbone features before the pixel decoder; the out-of-vocabulary branch pools
the features without them.

The maps are ``(1, C, size / stride, size / stride)``, initialised from a
standard normal as the reference does. Inputs must be exactly
``size x size`` (what the published pipeline produces); any other size is a
clear error, or, with ``interpolate=True``, the maps are resized bilinearly to
the feature size (a choice of ours: the reference cannot run other sizes).
"""
from __future__ import annotations

from typing import Dict, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError


class GlobalPositionMaps(nn.Module):
    """One learned map per backbone level, added to that level's features.

    Args:
        channels: ``{level: channels}`` (e.g. ``{'s4': 160, 's8': 320, ...}``).
        strides: ``{level: stride}`` of the same levels.
        size: the input size the maps are learned for (square, pixels).
        interpolate: resize the maps to inputs of other sizes instead of failing.
    """

    def __init__(self, channels: Mapping[str, int], strides: Mapping[str, int], size: int,
                 interpolate: bool = False):
        super().__init__()
        size = int(size)
        bad = [lvl for lvl in channels if size % int(strides[lvl])]
        if size <= 0 or bad:
            raise ConfigError(f'global_pos_embed.size must be a positive multiple of every '
                              f'level stride {sorted(set(strides.values()))}, got {size}')
        self.size = size
        self.interpolate = bool(interpolate)
        self.levels = tuple(channels)
        self.strides: Dict[str, int] = {lvl: int(strides[lvl]) for lvl in self.levels}
        for lvl in self.levels:
            side = size // self.strides[lvl]
            self.register_parameter(lvl, nn.Parameter(torch.randn(1, int(channels[lvl]),
                                                                  side, side)))

    def forward(self, feats: Mapping[str, Tensor]) -> Dict[str, Tensor]:
        """A new dict: ``feats`` with the maps added to their levels (others unchanged)."""
        out = dict(feats)
        for lvl in self.levels:
            x = feats[lvl]
            pos = getattr(self, lvl)
            if pos.shape[-2:] != x.shape[-2:]:
                if not self.interpolate:
                    h, w = (d * self.strides[lvl] for d in x.shape[-2:])
                    raise ConfigError(
                        f'the global position maps are learned for {self.size}x{self.size} '
                        f'inputs, got about {h}x{w}: resize the longer side to {self.size} and '
                        f'pad to {self.size}x{self.size} (the published test pipeline), or set '
                        'model.global_pos_embed.interpolate=True')
                pos = F.interpolate(pos, size=x.shape[-2:], mode='bilinear', align_corners=False)
            out[lvl] = x + pos.to(x.dtype)
        return out

    def extra_repr(self) -> str:
        return f'size={self.size}, levels={self.levels}, interpolate={self.interpolate}'


def build_global_position_maps(cfg, channels: Mapping[str, int], strides: Mapping[str, int],
                               levels: Sequence[str]) -> GlobalPositionMaps:
    """From the segmentor's ``global_pos_embed=dict(size=..., interpolate=...)``."""
    cfg = dict(cfg)
    unknown = set(cfg) - {'size', 'interpolate'}
    if unknown or 'size' not in cfg:
        raise ConfigError(f'global_pos_embed takes size (required) and interpolate; got '
                          f'{sorted(cfg)}')
    return GlobalPositionMaps({lvl: channels[lvl] for lvl in levels},
                              {lvl: strides[lvl] for lvl in levels}, cfg['size'],
                              cfg.get('interpolate', False))


__all__ = ['GlobalPositionMaps', 'build_global_position_maps']
