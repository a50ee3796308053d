"""Mask2Former's transformer decoder with masked attention.

Learned queries (content ``query_feat`` plus positional ``query_embed``) go
through ``num_layers`` layers, each: masked cross-attention to one level of the
pixel decoder's multi-scale outputs (round robin, coarsest first), then
self-attention among queries, then an FFN (post-norm throughout). Before the
first layer and after every layer the queries are normalised and turned into
mask logits (an MLP embedding dotted with the per-pixel mask features); the
binarised mask (``sigmoid < 0.5`` masked out) restricts the next layer's
cross-attention to the region the query currently predicts; a query whose
mask is empty attends everywhere.

Classification is not done here: FC-CLIP's classifier needs the mask-pooled
pixel features as well, so :class:`MaskedAttentionDecoder` returns the
normalised query features and mask logits of every step and the head turns
them into class logits. The layer computation and initialisation follow
detectron2's Mask2Former (as FC-CLIP); ``tests/test_seg_heads.py`` checks it
against mmdet's ``Mask2FormerTransformerDecoder`` with ported weights.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import MODELS
from .position_encoding import SinePositionEncoding


class DecoderStep(NamedTuple):
    """What one prediction step yields: normalised queries and mask logits."""

    queries: Tensor  # (B, Q, C), after the decoder's final LayerNorm
    masks: Optional[Tensor]  # (B, Q, H, W) logits at the mask-feature resolution (None:
    # an intermediate inference step, computed at the attention resolution only)


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU in between."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskedAttentionLayer(nn.Module):
    """Masked cross-attention, self-attention, FFN; each with residual and post-norm."""

    def __init__(self, embed_dims: int, num_heads: int, ffn_channels: int, dropout: float = 0.0):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout,
                                                batch_first=True)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.self_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout,
                                               batch_first=True)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.linear1 = nn.Linear(embed_dims, ffn_channels)
        self.linear2 = nn.Linear(ffn_channels, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor,
                attn_mask: Tensor) -> Tensor:
        out = self.cross_attn(query + query_pos, memory + memory_pos, memory,
                              attn_mask=attn_mask, need_weights=False)[0]
        query = self.norm1(query + self.dropout(out))
        q = query + query_pos
        out = self.self_attn(q, q, query, need_weights=False)[0]
        query = self.norm2(query + self.dropout(out))
        out = self.linear2(self.dropout(F.relu(self.linear1(query))))
        return self.norm3(query + self.dropout(out))


@MODELS.register_module()
class MaskedAttentionDecoder(BaseModule):
    """Mask2Former transformer decoder (masked attention), without a classifier.

    Args:
        in_channels: channels of the pixel decoder's multi-scale outputs.
        mask_channels: channels of the per-pixel mask features.
        hidden_dim: query width (FC-CLIP: 256).
        num_queries: learned queries (FC-CLIP with ViTamin: 250).
        num_layers: decoder layers (FC-CLIP: 9, i.e. its ``DEC_LAYERS=10``
            minus the prediction on the initial queries).
        num_heads: attention heads.
        ffn_channels: FFN width (FC-CLIP: 2048).
        num_feature_levels: levels visited round robin.
        enforce_input_proj: 1x1 input projection even when widths match.
        dropout: attention / FFN dropout (FC-CLIP: 0).
    """

    def __init__(self,
                 in_channels: int = 256,
                 mask_channels: int = 256,
                 hidden_dim: int = 256,
                 num_queries: int = 250,
                 num_layers: int = 9,
                 num_heads: int = 8,
                 ffn_channels: int = 2048,
                 num_feature_levels: int = 3,
                 enforce_input_proj: bool = False,
                 dropout: float = 0.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if hidden_dim % num_heads:
            raise ConfigError(f'hidden_dim ({hidden_dim}) must be divisible by num_heads '
                              f'({num_heads})')
        if num_queries < 1 or num_layers < 0:
            raise ConfigError(f'need num_queries >= 1 and num_layers >= 0, got {num_queries}, '
                              f'{num_layers}')
        self.hidden_dim = hidden_dim
        self.num_queries = num_queries
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.num_feature_levels = num_feature_levels
        self.position_encoding = SinePositionEncoding(hidden_dim // 2)
        self.layers = nn.ModuleList(MaskedAttentionLayer(hidden_dim, num_heads, ffn_channels,
                                                         dropout) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.input_projs = nn.ModuleList(
            nn.Conv2d(in_channels, hidden_dim, 1) if (in_channels != hidden_dim or
                                                      enforce_input_proj) else nn.Identity()
            for _ in range(num_feature_levels))
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_channels, 3)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Mask2Former's init: xavier-uniform matrices in the layers, c2-xavier projections."""
        for layer in self.layers:
            for p in layer.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for proj in self.input_projs:
            if isinstance(proj, nn.Conv2d):
                nn.init.kaiming_uniform_(proj.weight, a=1)
                nn.init.zeros_(proj.bias)

    def init_weights(self) -> None:
        """Parameters are initialised at construction (:meth:`reset_parameters`)."""
        if self.init_cfg:
            super().init_weights()
        self._is_init = True

    def predict_masks(self, queries: Tensor, mask_features: Tensor,
                      attn_size: Tuple[int, int], attn_features: Optional[Tensor] = None
                      ) -> Tuple[DecoderStep, Tensor]:
        """Normalised queries, mask logits, and the next layer's attention mask.

        With ``attn_features`` (``mask_features`` resized to ``attn_size``) the
        masks are computed at the attention resolution only and the step's
        ``masks`` is None: resizing is linear, so resizing the features before
        the dot product gives the resized masks (to float rounding) at a
        fraction of the cost; inference uses it for the intermediate steps,
        whose masks serve only as attention masks.
        """
        normed = self.decoder_norm(queries)
        embed = self.mask_embed(normed)
        masks = None
        if attn_features is None:
            masks = torch.einsum('bqc,bchw->bqhw', embed, mask_features)
        with torch.no_grad():
            if masks is None:
                small = torch.einsum('bqc,bchw->bqhw', embed.detach(), attn_features).float()
            else:
                small = F.interpolate(masks.detach().float(), size=attn_size, mode='bilinear',
                                      align_corners=False)
            blocked = small.flatten(2).sigmoid() < 0.5
            # a query predicting an empty mask attends everywhere
            blocked = blocked & ~blocked.all(-1, keepdim=True)  # not in place: exports to ONNX
            attn_mask = blocked.repeat_interleave(self.num_heads, dim=0)
        return DecoderStep(normed, masks), attn_mask

    def forward(self, feats: Sequence[Tensor], mask_features: Tensor,
                keep_all: bool = True) -> List[DecoderStep]:
        """
        Args:
            feats: ``num_feature_levels`` maps, coarsest first (the pixel
                decoder's encoder outputs), ``(B, in_channels, H_l, W_l)``.
            mask_features: ``(B, mask_channels, H, W)``.
            keep_all: return every step (deep supervision); False keeps only
                the last one, so inference holds one set of full-size mask
                logits at a time (250 queries at 1344 px: 113 MB each), and
                computes the other steps' masks at their attention resolution
                only (see :meth:`predict_masks`).

        Returns:
            ``num_layers + 1`` :class:`DecoderStep` (initial queries first),
            or the last one only.
        """
        if len(feats) != self.num_feature_levels:
            raise ValueError(f'decoder expects {self.num_feature_levels} levels, got {len(feats)}')
        b = mask_features.shape[0]
        memories, positions, sizes = [], [], []
        for i, x in enumerate(feats):
            h, w = x.shape[-2:]
            sizes.append((h, w))
            src = self.input_projs[i](x).flatten(2).transpose(1, 2)
            memories.append(src + self.level_embed.weight[i].to(src.dtype))
            pe = self.position_encoding(h, w, device=x.device, dtype=src.dtype)
            positions.append(pe.flatten(2).transpose(1, 2))
        query = self.query_feat.weight[None].expand(b, -1, -1)
        query_pos = self.query_embed.weight[None].expand(b, -1, -1)
        resized = {}  # without keep_all: mask features at each attention size

        def attn_features(step: int, size: Tuple[int, int]) -> Optional[Tensor]:
            if keep_all or step == self.num_layers:  # a kept step needs its full masks
                return None
            if size not in resized:
                with torch.no_grad():
                    resized[size] = F.interpolate(mask_features.detach(), size=size,
                                                  mode='bilinear', align_corners=False)
            return resized[size]

        step, attn_mask = self.predict_masks(query, mask_features, sizes[0],
                                             attn_features(0, sizes[0]))
        steps = [step]
        for i, layer in enumerate(self.layers):
            lvl = i % self.num_feature_levels
            query = layer(query, query_pos, memories[lvl], positions[lvl].expand(b, -1, -1),
                          attn_mask)
            size = sizes[(i + 1) % self.num_feature_levels]
            step, attn_mask = self.predict_masks(query, mask_features, size,
                                                 attn_features(i + 1, size))
            steps = steps + [step] if keep_all else [step]
        return steps


__all__ = ['MaskedAttentionDecoder', 'MaskedAttentionLayer', 'DecoderStep', 'MLP']
