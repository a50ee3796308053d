"""Mask2Former's pixel decoder: deformable-attention encoder over s8..s32, FPN to s4.

Inputs are the backbone maps at strides 4, 8, 16, 32 (for ViTamin: the two
MBConv stages, the final tokens and their 2x max-pool). The coarsest
``num_encoder_levels`` maps are projected to ``feat_channels`` (1x1 conv +
GroupNorm), given sine position and learned level encodings, flattened
together and refined by a stack of multi-scale deformable self-attention
layers (post-norm, ReLU FFN). The finer remaining maps are fused top-down
FPN-style (1x1 lateral conv, add the upsampled coarser output, 3x3 conv with
GroupNorm and ReLU), and a 1x1 conv on the finest output gives the per-pixel
mask features.

The computation, parameter shapes and initialisation follow detectron2's
Mask2Former / FC-CLIP ``MSDeformAttnPixelDecoder``; ``tests/test_seg_heads.py``
ports the weights of mmdet's ``MSDeformAttnPixelDecoder`` (the same
architecture) and checks the outputs agree. (Named differently from mmdet's
class so that neither registry lookup can pick the other.)
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import MODELS
from .ms_deform_attn import MSDeformAttn
from .position_encoding import SinePositionEncoding


class DeformableEncoderLayer(nn.Module):
    """``x = norm1(x + MSDeformAttn(x + pos))``; ``x = norm2(x + FFN(x))``."""

    def __init__(self, embed_dims: int, num_heads: int, num_levels: int, num_points: int,
                 ffn_channels: int, dropout: float = 0.0, impl: str = 'auto'):
        super().__init__()
        self.self_attn = MSDeformAttn(embed_dims, num_heads, num_levels, num_points,
                                      dropout=dropout, impl=impl)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.linear1 = nn.Linear(embed_dims, ffn_channels)
        self.linear2 = nn.Linear(ffn_channels, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(embed_dims)

    def forward(self, x: Tensor, pos: Tensor, reference_points: Tensor,
                spatial_shapes: List[Tuple[int, int]]) -> Tensor:
        x = self.norm1(self.self_attn(x, reference_points, x, spatial_shapes, query_pos=pos))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm2(x + self.dropout(ffn))


def _conv_norm(in_ch: int, out_ch: int, kernel: int, groups: int, bias: bool,
               relu: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=bias),
              nn.GroupNorm(groups, out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def encoder_reference_points(spatial_shapes: Sequence[Tuple[int, int]], num_levels: int,
                             device=None) -> Tensor:
    """Pixel centres of every level, normalised to ``[0, 1]``: ``(1, N, levels, 2)``."""
    refs = []
    for h, w in spatial_shapes:
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
        refs.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], -1))
    return torch.cat(refs)[None, :, None, :].expand(1, -1, num_levels, 2)


@MODELS.register_module()
class DeformablePixelDecoder(BaseModule):
    """Pixel decoder with a multi-scale deformable attention encoder.

    Args:
        in_channels: channels of the input maps, finest first (s4, s8, s16, s32).
        strides: their strides.
        feat_channels: width of the encoder and FPN (``conv_dim``).
        out_channels: channels of the mask features (``mask_dim``).
        num_encoder_levels: coarsest levels that go through the encoder.
        num_layers: encoder layers.
        num_heads, num_points, ffn_channels, dropout: encoder layer settings.
        num_groups: GroupNorm groups.
        num_outs: encoder outputs returned for the transformer decoder.
        impl: deformable attention implementation (``'auto'``, ``'pytorch'``, ``'mmcv'``).
        fp32_encoder: run the encoder in float32 under autocast (as FC-CLIP:
            deformable attention is unstable in half precision).
        fp32_fpn: also run the FPN levels and the mask-feature conv in float32
            under autocast, i.e. the whole pixel decoder (FC-CLIP and
            Mask2Former: ``forward_features`` is ``autocast(enabled=False)``).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 strides: Sequence[int] = (4, 8, 16, 32),
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_encoder_levels: int = 3,
                 num_layers: int = 6,
                 num_heads: int = 8,
                 num_points: int = 4,
                 ffn_channels: int = 1024,
                 dropout: float = 0.0,
                 num_groups: int = 32,
                 num_outs: int = 3,
                 impl: str = 'auto',
                 fp32_encoder: bool = True,
                 fp32_fpn: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        in_channels, strides = list(in_channels), list(strides)
        if len(in_channels) != len(strides):
            raise ConfigError(f'pixel decoder: {len(in_channels)} in_channels for '
                              f'{len(strides)} strides')
        if list(strides) != sorted(strides):
            raise ConfigError(f'pixel decoder: strides must be increasing (finest first), '
                              f'got {strides}')
        if not 1 <= num_encoder_levels <= len(in_channels):
            raise ConfigError(f'num_encoder_levels must be in [1, {len(in_channels)}], '
                              f'got {num_encoder_levels}')
        if feat_channels % num_groups:
            raise ConfigError(f'feat_channels ({feat_channels}) must be divisible by '
                              f'num_groups ({num_groups})')
        if not 1 <= num_outs <= len(in_channels):
            raise ConfigError(f'num_outs must be in [1, {len(in_channels)}], got {num_outs}')
        self.in_channels = in_channels
        self.strides = strides
        self.feat_channels = feat_channels
        self.out_channels = out_channels
        self.num_levels = len(in_channels)
        self.num_encoder_levels = num_encoder_levels
        self.num_outs = num_outs
        self.fp32_encoder = fp32_encoder
        self.fp32_fpn = fp32_fpn
        # encoder levels, coarsest first
        self.encoder_level_ids = list(range(self.num_levels - 1,
                                            self.num_levels - num_encoder_levels - 1, -1))
        self.input_projs = nn.ModuleList(
            _conv_norm(in_channels[i], feat_channels, 1, num_groups, bias=True)
            for i in self.encoder_level_ids)
        self.level_embed = nn.Embedding(num_encoder_levels, feat_channels)
        self.position_encoding = SinePositionEncoding(feat_channels // 2)
        self.encoder_layers = nn.ModuleList(
            DeformableEncoderLayer(feat_channels, num_heads, num_encoder_levels, num_points,
                                   ffn_channels, dropout, impl) for _ in range(num_layers))
        # FPN levels, coarsest first
        self.fpn_level_ids = list(range(self.num_levels - num_encoder_levels - 1, -1, -1))
        self.lateral_convs = nn.ModuleList(
            _conv_norm(in_channels[i], feat_channels, 1, num_groups, bias=False)
            for i in self.fpn_level_ids)
        self.output_convs = nn.ModuleList(
            _conv_norm(feat_channels, feat_channels, 3, num_groups, bias=False, relu=True)
            for _ in self.fpn_level_ids)
        self.mask_features = nn.Conv2d(feat_channels, out_channels, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Mask2Former's init: xavier for projections, c2-xavier for convs, N(0,1) levels."""
        for proj in self.input_projs:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)
        for layer in self.encoder_layers:
            for p in layer.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
            layer.self_attn.reset_parameters()
        nn.init.normal_(self.level_embed.weight)
        for conv in [m[0] for m in self.lateral_convs] + [m[0] for m in self.output_convs] + \
                [self.mask_features]:
            nn.init.kaiming_uniform_(conv.weight, a=1)  # detectron2's c2_xavier_fill
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def init_weights(self) -> None:
        """Parameters are initialised at construction (:meth:`reset_parameters`)."""
        if self.init_cfg:
            super().init_weights()
        self._is_init = True

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """
        Args:
            feats: maps at :attr:`strides`, finest first, ``(B, C_i, H_i, W_i)``.

        Returns:
            ``mask_features`` ``(B, out_channels, H_0, W_0)`` and the encoder
            outputs (coarsest first, ``num_outs`` of them, ``feat_channels``).
        """
        if len(feats) != self.num_levels:
            raise ValueError(f'pixel decoder expects {self.num_levels} maps, got {len(feats)}')
        b = feats[0].shape[0]
        device_type = feats[0].device.type
        with torch.autocast(device_type, enabled=not self.fp32_encoder
                            and torch.is_autocast_enabled(device_type)):
            srcs, pos, shapes = [], [], []
            for k, lvl in enumerate(self.encoder_level_ids):
                x = feats[lvl].float() if self.fp32_encoder else feats[lvl]
                h, w = x.shape[-2:]
                shapes.append((h, w))
                src = self.input_projs[k](x)
                pe = self.position_encoding(h, w, device=x.device, dtype=src.dtype)
                srcs.append(src.flatten(2).transpose(1, 2))
                pos.append((pe + self.level_embed.weight[k].view(1, -1, 1, 1).to(src.dtype))
                           .flatten(2).transpose(1, 2))
            memory = torch.cat(srcs, 1)
            pos = torch.cat(pos, 1)
            refs = encoder_reference_points(shapes, self.num_encoder_levels, memory.device)
            refs = refs.to(memory.dtype).expand(b, -1, -1, -1)
            for layer in self.encoder_layers:
                memory = layer(memory, pos, refs, shapes)
        outs = [m.transpose(1, 2).reshape(b, -1, h, w)
                for m, (h, w) in zip(memory.split([h * w for h, w in shapes], 1), shapes)]
        with torch.autocast(device_type, enabled=not self.fp32_fpn
                            and torch.is_autocast_enabled(device_type)):
            for k, lvl in enumerate(self.fpn_level_ids):
                x = feats[lvl].float() if self.fp32_fpn else feats[lvl]
                lateral = self.lateral_convs[k](x)
                top = F.interpolate(outs[-1], size=lateral.shape[-2:], mode='bilinear',
                                    align_corners=False)
                outs.append(self.output_convs[k](lateral + top.to(lateral.dtype)))
            mask_features = self.mask_features(outs[-1])
        return mask_features, outs[:self.num_outs]


__all__ = ['DeformablePixelDecoder', 'DeformableEncoderLayer', 'encoder_reference_points']
