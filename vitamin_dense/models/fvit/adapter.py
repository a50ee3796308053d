"""F-ViT's small trainable adapters from frozen ViTamin maps to strides 4/8/16/32.

The published Sliding F-ViT keeps the ViTamin trunk frozen and trains only
light layers between it and the FPN:

* stride 4: conv3x3 - norm - GELU - conv3x3 on the MBConv stage-1 map (``s4``),
* stride 8: conv3x3 on the MBConv stage-2 map (``s8``),
* stride 16: the tokens after the middle ViT block, unchanged (``block{d/2-1}``),
* stride 32: 2x2 max-pooling of the last token map (``s16``).

Each level is one :class:`AdapterLevel`; the set is configurable, and its
input names are checked against the backbone's ``output_shape()``. The
adapter keeps channels, so the FPN's ``in_channels`` follow from the backbone
(:attr:`SlidingFViTAdapter.out_channels`).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import MODELS, register_openmmlab_alias
from ..necks.norm import build_norm

KINDS = ('identity', 'conv', 'conv_norm_act_conv', 'maxpool', 'deconv')


class _MaxPool2x(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)


def _build_level(kind: str, channels: int, norm: str) -> nn.Module:
    if kind == 'identity':
        return nn.Identity()
    if kind == 'conv':
        return nn.Conv2d(channels, channels, 3, padding=1)
    if kind == 'conv_norm_act_conv':
        return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                             build_norm(norm, channels), nn.GELU(),
                             nn.Conv2d(channels, channels, 3, padding=1))
    if kind == 'maxpool':
        return _MaxPool2x()
    if kind == 'deconv':
        return nn.ConvTranspose2d(channels, channels, 2, stride=2)
    raise ConfigError(f"unknown adapter kind '{kind}'; choose from {', '.join(KINDS)}")


def fvit_default_levels(depth: int) -> List[dict]:
    """The published adapter set for a trunk of ``depth`` ViT blocks."""
    return [dict(input='s4', kind='conv_norm_act_conv', stride=4),
            dict(input='s8', kind='conv', stride=8),
            dict(input=f'block{depth // 2 - 1}', kind='identity', stride=16),
            dict(input='s16', kind='maxpool', stride=32)]


@MODELS.register_module()
@register_openmmlab_alias('mmdet')
class SlidingFViTAdapter(BaseModule):
    """Maps named backbone outputs to a tuple of pyramid levels.

    Args:
        in_shapes: ``{name: (channels, stride)}``, i.e. ``backbone.output_shape()``.
        levels: one dict per output level, fine to coarse, with ``input`` (a
            backbone output name), ``kind`` (one of :data:`KINDS`) and
            optionally ``stride`` (checked against the input's stride).
        norm: norm of the ``conv_norm_act_conv`` level (``'SyncBN'`` as published,
            ``'BN'`` on one device, ``'LN2d'``, ``'GN'``).
    """

    def __init__(self, in_shapes: Mapping[str, Sequence[int]], levels: Sequence[dict],
                 norm: str = 'SyncBN', init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not levels:
            raise ConfigError('SlidingFViTAdapter needs at least one level')
        self.inputs: List[str] = []
        self.strides: List[int] = []
        self.out_channels: List[int] = []
        self.levels = nn.ModuleList()
        for level in levels:
            name, kind = level.get('input'), level.get('kind', 'identity')
            if name not in in_shapes:
                hint = ''
                if isinstance(name, str) and name.startswith('block'):
                    hint = f' (add {name[5:]} to backbone.out_block_indices)'
                elif name in ('s4', 's8', 's16', 's32'):
                    hint = f" (add '{name}' to backbone.out_levels)"
                raise ConfigError(f"F-ViT adapter input '{name}' is not a backbone output"
                                  f'{hint}; the backbone gives {sorted(in_shapes)}')
            channels, stride = int(in_shapes[name][0]), int(in_shapes[name][1])
            out_stride = stride * 2 if kind == 'maxpool' else (
                stride // 2 if kind == 'deconv' else stride)
            if 'stride' in level and int(level['stride']) != out_stride:
                raise ConfigError(f"F-ViT adapter level from '{name}' (stride {stride}, "
                                  f"{kind}) has stride {out_stride}, not {level['stride']}")
            self.inputs.append(name)
            self.strides.append(out_stride)
            self.out_channels.append(channels)
            self.levels.append(_build_level(kind, channels, norm))
        if self.strides != sorted(self.strides):
            raise ConfigError(f'F-ViT adapter levels must go from fine to coarse, got strides '
                              f'{self.strides}')

    def forward(self, maps: Dict[str, Tensor]) -> tuple:
        if not isinstance(maps, Mapping):
            raise TypeError('SlidingFViTAdapter takes the dict of named backbone maps '
                            '(ViTaminBackbone with return_tuple=False)')
        return tuple(level(maps[name]) for name, level in zip(self.inputs, self.levels))

    @classmethod
    def from_backbone(cls, backbone, levels: Optional[Sequence[dict]] = None,
                      norm: str = 'SyncBN') -> 'SlidingFViTAdapter':
        """Adapter for a built :class:`ViTaminBackbone` (default: the published levels)."""
        if levels is None:
            levels = fvit_default_levels(len(backbone.trunk.blocks))
        return cls(backbone.output_shape(), levels, norm=norm)
