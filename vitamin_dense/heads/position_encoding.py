"""Sine positional encoding of a 2-D feature map (DETR / Mask2Former convention).

Coordinates are the 1-based row and column index normalised by the map size
and scaled to ``[0, 2 pi]``; each is encoded by ``num_feats`` interleaved
sines and cosines of geometric frequencies; the output concatenates the y
and x halves. Images are never padded inside the head (the sliding window
already covers the whole image), so the encoding depends only on the map's
height and width and is cached per size.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
from torch import Tensor, nn


class SinePositionEncoding(nn.Module):
    """``(1, 2 * num_feats, H, W)`` sine encoding of an ``H x W`` grid.

    Args:
        num_feats: channels per axis (half the output channels).
        temperature: base of the frequencies.
        scale: range the normalised coordinates are scaled to.
        eps: added to the normaliser (as DETR).
    """

    def __init__(self, num_feats: int = 128, temperature: float = 10000.,
                 scale: float = 2 * math.pi, eps: float = 1e-6):
        super().__init__()
        self.num_feats = num_feats
        self.temperature = temperature
        self.scale = scale
        self.eps = eps
        self._cache: Dict[Tuple[int, int, str, str], Tensor] = {}

    def forward(self, height: int, width: int, device=None, dtype=torch.float32) -> Tensor:
        key = (int(height), int(width), str(device), str(dtype))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
        x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
        y = y / (height + self.eps) * self.scale
        x = x / (width + self.eps) * self.scale
        idx = torch.arange(self.num_feats, dtype=torch.float32, device=device)
        freqs = self.temperature ** (2 * torch.div(idx, 2, rounding_mode='floor') / self.num_feats)
        py = y[:, None] / freqs  # (H, F)
        px = x[:, None] / freqs  # (W, F)
        py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)
        px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)
        pos = torch.cat([py[:, None, :].expand(height, width, -1),
                         px[None, :, :].expand(height, width, -1)], dim=-1)
        pos = pos.permute(2, 0, 1)[None].to(dtype).contiguous()
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[key] = pos
        return pos

    def extra_repr(self) -> str:
        return f'num_feats={self.num_feats}, temperature={self.temperature}'
