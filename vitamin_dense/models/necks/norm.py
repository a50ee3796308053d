"""Channel LayerNorm for ``(B, C, H, W)`` maps, as ViTDet's heads and necks use.

Registered as ``LN2d`` (the name MMDetection's ViTDet project uses) in our
MODELS and, through the alias, in mmdet's (with the detection neck that uses
it), so mmcv's ``build_norm_layer(dict(type='LN2d'), C)`` builds it from a
stock MMDetection config; elsewhere it is ``vitamin_dense.LN2d``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from ...utils.openmmlab_alias import alias_into_openmmlab


@MODELS.register_module(name='LN2d')
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of a channels-first map."""

    _abbr_ = 'ln'  # what mmcv's build_norm_layer names the module

    def __init__(self, num_features: int, eps: float = 1e-6, **kwargs):
        kwargs.pop('requires_grad', None)  # mmcv-style norm_cfg key
        super().__init__(num_features, eps=eps, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


alias_into_openmmlab(LayerNorm2d, name='LN2d', packages=('mmdet',))


def build_norm(kind: str, channels: int) -> nn.Module:
    """A norm layer by name (``LN2d``, ``BN``, ``SyncBN``, ``GN``, ``none``), plain torch."""
    if kind == 'LN2d':
        return LayerNorm2d(channels)
    if kind == 'BN':
        return nn.BatchNorm2d(channels)
    if kind == 'SyncBN':
        return nn.SyncBatchNorm(channels)
    if kind == 'GN':
        return nn.GroupNorm(min(32, channels), channels)
    if kind in ('none', None):
        return nn.Identity()
    from ...errors import ConfigError
    raise ConfigError(f"unknown norm '{kind}'; choose LN2d, BN, SyncBN, GN or none")
