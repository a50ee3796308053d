"""ViTDet's simple feature pyramid: strides 4..32 (and 64) from one stride-16 map.

"Exploring Plain Vision Transformer Backbones for Object Detection" (Li et al.,
2022) builds the pyramid from the last map of a plain ViT alone: stride 8 by
one 2x2 transposed conv, stride 4 by two (with a norm and GELU between), stride
16 as is, stride 32 by 2x2 max-pooling; each level then goes through a 1x1 conv
and a 3x3 conv (each followed by a norm) to ``out_channels``, and an extra
level is max-pooled from the coarsest for RPN's stride 64. MMDetection 3.3
ships it only in ``projects/ViTDet`` (not installed with the package), so this
is our own, in plain PyTorch, usable as ``neck=dict(type='SimpleFeaturePyramid')``
from mmdet, mmseg and vitamin_dense configs.

With ViTamin the input is the ``s16`` map (``ViTaminBackbone(out_levels=('s16',),
return_tuple=True)``); ``in_channels`` is ``backbone.output_shape()['s16'].channels``.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import MODELS, register_openmmlab_alias
from .norm import build_norm


def _scale_stage(scale: float, channels: int, norm: str) -> Tuple[nn.Module, int]:
    """Resampling from the input stride by ``scale``; returns the module and its out channels."""
    if scale == 4.0:
        half, quarter = channels // 2, channels // 4
        return nn.Sequential(nn.ConvTranspose2d(channels, half, 2, stride=2),
                             build_norm(norm, half), nn.GELU(),
                             nn.ConvTranspose2d(half, quarter, 2, stride=2)), quarter
    if scale == 2.0:
        half = channels // 2
        return nn.ConvTranspose2d(channels, half, 2, stride=2), half
    if scale == 1.0:
        return nn.Identity(), channels
    if scale == 0.5:
        return nn.MaxPool2d(2, stride=2, ceil_mode=True), channels
    if scale == 0.25:
        return nn.MaxPool2d(4, stride=4, ceil_mode=True), channels
    raise ConfigError(f'SimpleFeaturePyramid: unsupported scale factor {scale}; '
                      'choose from 4, 2, 1, 0.5, 0.25')


@MODELS.register_module()
@register_openmmlab_alias('mmdet')
class SimpleFeaturePyramid(BaseModule):
    """Multi-scale features from a single map (ViTDet).

    Args:
        in_channels: channels of the input map.
        out_channels: channels of every output level.
        scale_factors: resampling of each level relative to the input
            (``4, 2, 1, 0.5`` turn stride 16 into strides 4, 8, 16, 32).
        num_outs: outputs; levels beyond ``len(scale_factors)`` are max-pooled
            (kernel 1, stride 2, as ViTDet's ``LastLevelMaxPool``) from the last.
        in_index: which map of the input tuple to use (default: the last).
        norm: ``'LN2d'`` (ViTDet), ``'BN'``, ``'SyncBN'``, ``'GN'`` or ``'none'``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 256,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 num_outs: int = 5,
                 in_index: int = -1,
                 norm: str = 'LN2d',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(in_channels, (list, tuple)):
            raise ConfigError('SimpleFeaturePyramid takes one map: in_channels must be an int '
                              f'(the stride-16 channels), got {in_channels}')
        if num_outs < len(scale_factors):
            raise ConfigError(f'num_outs ({num_outs}) must be at least the number of '
                              f'scale factors ({len(scale_factors)})')
        self.in_channels = int(in_channels)
        self.out_channels = out_channels
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.num_outs = num_outs
        self.in_index = in_index
        self.stages = nn.ModuleList()
        for scale in self.scale_factors:
            resample, channels = _scale_stage(scale, self.in_channels, norm)
            self.stages.append(nn.Sequential(
                resample,
                nn.Conv2d(channels, out_channels, 1, bias=norm in ('none', None)),
                build_norm(norm, out_channels),
                nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=norm in ('none', None)),
                build_norm(norm, out_channels)))

    def init_weights(self) -> None:
        super().init_weights()
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_uniform_(m.weight, a=1)  # as ViTDet's c2_xavier_fill
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, inputs: Union[Tensor, Sequence[Tensor], dict]) -> Tuple[Tensor, ...]:
        if isinstance(inputs, dict):
            x = inputs['s16']
        elif isinstance(inputs, Tensor):
            x = inputs
        else:
            x = inputs[self.in_index]
        if x.shape[1] != self.in_channels:
            raise ConfigError(
                f'SimpleFeaturePyramid was configured with in_channels={self.in_channels} but '
                f'the backbone gives {x.shape[1]} channels; set neck.in_channels={x.shape[1]} '
                "(backbone.output_shape()['s16'].channels)")
        outs: List[Tensor] = [stage(x) for stage in self.stages]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)
