"""F-ViT's RPN head on OV-LVIS: mmdet's RPNHead with normalised stacked convs.

The published OV-LVIS Sliding F-ViT follows each of the RPN's two 3x3 convs
with a (synchronised) batch norm before the ReLU; stock :class:`RPNHead`
has no norm option. With ``norm_cfg=None`` this is exactly mmdet's head.
"""
from __future__ import annotations

from typing import Optional

from mmcv.cnn import ConvModule
from mmdet.models.dense_heads import RPNHead
from torch import nn

from ...errors import ConfigError
from ...registry import MODELS, register_openmmlab_alias


@MODELS.register_module()
@register_openmmlab_alias('mmdet')
class FViTRPNHead(RPNHead):
    """:class:`~mmdet.models.dense_heads.RPNHead` whose ``num_convs`` (> 1) convs are
    conv - norm - ReLU blocks (``norm_cfg``, e.g. ``dict(type='SyncBN')``)."""

    def __init__(self, *args, norm_cfg: Optional[dict] = None, **kwargs):
        if norm_cfg is not None and kwargs.get('num_convs', 1) < 2:
            raise ConfigError('FViTRPNHead normalises its stacked convs: norm_cfg needs '
                              'num_convs > 1 (published: 2)')
        self.norm_cfg = norm_cfg
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        super()._init_layers()
        if self.norm_cfg is None:
            return
        self.rpn_conv = nn.Sequential(*[
            ConvModule(self.in_channels if i == 0 else self.feat_channels, self.feat_channels,
                       3, padding=1, norm_cfg=self.norm_cfg, inplace=False)
            for i in range(self.num_convs)])
