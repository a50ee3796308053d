"""OWL-ViT / OWLv2 detection heads on a (stitched) ViTamin token map.

Every image token predicts one box and one score per text (or image) query:

* **box head**: a 3-layer MLP with GELU predicts 4 logits that are added to a
  fixed per-token *box bias* (the logit of the token's normalised position
  and of the token size) and squashed with a sigmoid into ``cx, cy, w, h``
  normalised to the token grid (see :func:`grid_box_bias`);
* **class head**: tokens are projected into the text space, L2-normalised and
  compared with the L2-normalised query embeddings; the cosine is shifted and
  scaled per token (``shift = Linear(d, 1)``, ``scale = ELU(Linear(d, 1)) + 1``);
  padded queries get the dtype's minimum logit;
* **objectness head** (OWLv2): the box-MLP shape with one output, on detached
  features (it never shapes the features the other heads use).

The heads take the *merged* token features. OWL-ViT merges each patch token
with the CLS token (``LayerNorm(post_ln(patch) * post_ln(cls))``); ViTamin has
no CLS token; the detector's substitute is, by default, ``fc_norm(mean of the
image's tokens)``: the very vector ViTamin's CLIP head pools for its image
embedding (see :class:`OwlDetectionHead` and
:class:`~vitamin_dense.models.OwlDetector`).

The grid of a stitched map: the token map of an ``H x W`` image has
``ceil(H/16) x ceil(W/16)`` tokens covering ``[0, 16 * ceil(W/16)) x [0, 16 *
ceil(H/16))`` pixels; box coordinates are normalised per axis to that extent,
so a non-square image simply has a non-square grid (no square padding) and a
token's bias box is its own 16 x 16 pixel cell.

Submodule names (``dense0``, ``logit_shift``, ...) follow the OWL-ViT
convention so that weights of Hugging Face's OWLv2 heads port one to one
(:meth:`OwlDetectionHead.load_owlv2_head_state`).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import MODELS

GRID_ANCHORS = ('center', 'corner')
CONTEXT_MODES = ('image', 'window', 'none')


# ----------------------------------------------------------------- box bias
def grid_box_bias(height: int, width: int, anchor: str = 'center',
                  device: Optional[torch.device] = None,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """Fixed box bias of an ``height x width`` token grid, ``(height * width, 4)``.

    Row-major over the grid (the order of ``tokens.flatten``). Each row is
    ``logit(x), logit(y), logit(1 / width), logit(1 / height)``: the logit of
    the token's normalised position and of the token size, so that a zero MLP
    output decodes (after the sigmoid) to the token's own cell.

    Args:
        anchor: ``'center'`` puts the bias at the token centre
            ``((j + 0.5) / width, (i + 0.5) / height)`` with an exact logit
            (the default of this toolkit); ``'corner'`` reproduces OWL-ViT /
            OWLv2 (scenic and Hugging Face): the token's bottom-right corner
            ``((j + 1) / width, (i + 1) / height)``, clipped to ``[0, 1]`` and
            with ``logit(p) = log(p + 1e-4) - log1p(-p + 1e-4)``, needed to use
            OWL weights but saturating for the last row and column.
    """
    if height < 1 or width < 1:
        raise ValueError(f'a token grid needs at least one token, got {height}x{width}')
    return _grid_box_bias(int(height), int(width), anchor).to(device=device, dtype=dtype)


@lru_cache(maxsize=64)
def _grid_box_bias(height: int, width: int, anchor: str) -> Tensor:
    if anchor not in GRID_ANCHORS:
        raise ConfigError(f"unknown box-bias anchor '{anchor}'; choose from {GRID_ANCHORS}")
    offset = 0.5 if anchor == 'center' else 1.0
    # OWL computes its (corner) bias in float32: do the same to reproduce it bit for bit
    dtype = torch.float64 if anchor == 'center' else torch.float32
    xs = (torch.arange(width, dtype=dtype) + offset) / width
    ys = (torch.arange(height, dtype=dtype) + offset) / height
    yy, xx = torch.meshgrid(ys, xs, indexing='ij')
    xy = torch.stack((xx, yy), dim=-1).reshape(-1, 2)
    wh = torch.tensor([1.0 / width, 1.0 / height], dtype=dtype).expand_as(xy)
    if anchor == 'corner':
        xy = xy.clamp(0.0, 1.0)
        eps = 1e-4
        logit = lambda p: torch.log(p + eps) - torch.log1p(-p + eps)  # noqa: E731
    else:
        logit = lambda p: torch.log(p) - torch.log1p(-p)  # noqa: E731
        # a grid one token wide has size 1, whose exact logit is +inf: cap it
        wh = wh.clamp(max=1.0 - 1e-6)
    return torch.cat((logit(xy), logit(wh)), dim=-1).float()


def boxes_to_pixels(boxes: Tensor, grid_hw: Tuple[int, int], token_size: int = 16) -> Tensor:
    """Normalised ``cx, cy, w, h`` on a token grid -> ``x1, y1, x2, y2`` in input pixels."""
    from torchvision.ops import box_convert
    h, w = grid_hw
    scale = boxes.new_tensor([w * token_size, h * token_size] * 2)
    return box_convert(boxes, 'cxcywh', 'xyxy') * scale


def pixels_to_boxes(boxes_xyxy: Tensor, grid_hw: Tuple[int, int],
                    token_size: int = 16) -> Tensor:
    """Inverse of :func:`boxes_to_pixels`."""
    from torchvision.ops import box_convert
    h, w = grid_hw
    scale = boxes_xyxy.new_tensor([w * token_size, h * token_size] * 2)
    return box_convert(boxes_xyxy / scale, 'xyxy', 'cxcywh')


# ------------------------------------------------------------- CLS stand-in
def masked_token_mean(tokens: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """Mean over the valid tokens of ``(B, H, W, D)`` -> ``(B, D)``."""
    if valid is None:
        return tokens.mean(dim=(1, 2))
    weights = valid.to(tokens.dtype)[..., None]
    return (tokens * weights).sum(dim=(1, 2)) / weights.sum(dim=(1, 2)).clamp_min(1.0)


# -------------------------------------------------------------------- heads
class OwlMLP(nn.Module):
    """OWL-ViT's box-head shape: Linear-GELU-Linear-GELU-Linear."""

    def __init__(self, width: int, out_dim: int):
        super().__init__()
        self.dense0 = nn.Linear(width, width)
        self.dense1 = nn.Linear(width, width)
        self.dense2 = nn.Linear(width, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.dense2(F.gelu(self.dense1(F.gelu(self.dense0(x)))))


class OwlClassHead(nn.Module):
    """Tokens -> text space; logits ``(cos + shift) * (ELU(s) + 1)`` per token and query."""

    def __init__(self, in_channels: int, embed_dim: int, eps: float = 1e-6):
        super().__init__()
        self.dense0 = nn.Linear(in_channels, embed_dim)
        self.logit_shift = nn.Linear(in_channels, 1)
        self.logit_scale = nn.Linear(in_channels, 1)
        self.eps = eps

    def embed(self, features: Tensor) -> Tensor:
        """Unnormalised class embeddings of the tokens (what one-shot queries are made of)."""
        return self.dense0(features)

    def forward(self, features: Tensor, queries: Tensor,
                query_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Logits ``(B, N, Q)`` and unnormalised class embeddings ``(B, N, E)``.

        Args:
            features: ``(B, N, D)`` merged token features.
            queries: ``(B, Q, E)`` or ``(Q, E)`` query embeddings (any norm).
            query_mask: ``(B, Q)`` or ``(Q,)``, true/1 for real queries;
                padded queries get ``finfo(dtype).min``.
        """
        class_embeds = self.dense0(features)
        image = class_embeds / (class_embeds.norm(dim=-1, keepdim=True) + self.eps)
        if queries.dim() == 2:
            queries = queries.unsqueeze(0).expand(features.shape[0], -1, -1)
        queries = queries.to(image.dtype)
        queries = queries / (queries.norm(dim=-1, keepdim=True) + self.eps)
        logits = torch.einsum('bnd,bqd->bnq', image, queries)
        shift = self.logit_shift(features)
        scale = F.elu(self.logit_scale(features)) + 1
        logits = (logits + shift) * scale
        if query_mask is not None:
            mask = query_mask.to(torch.bool)
            if mask.dim() == 1:
                mask = mask.unsqueeze(0)
            logits = logits.masked_fill(~mask[:, None, :], torch.finfo(logits.dtype).min)
        return logits, class_embeds


@MODELS.register_module()
class OwlDetectionHead(BaseModule):
    """Box, class and objectness heads of OWL-ViT / OWLv2 on a token map.

    Args:
        in_channels: token width ``D`` (ViTamin's ``s16`` channels).
        embed_dim: width of the query (text) space ``E``.
        box_anchor: ``'center'`` (default) or ``'corner'`` (OWL-ViT's exact
            bias, for ported weights); see :func:`grid_box_bias`.
        context: the CLS-token stand-in the tokens are multiplied by before
            the head LayerNorm: ``'image'`` (default; the pooled image token,
            mean over the whole image's tokens, then ``fc_norm``),
            ``'window'`` (the pooled token of each sliding window, merged per
            window before stitching), or ``'none'`` (LayerNorm of the tokens).
        with_objectness: build the OWLv2 objectness head.
        box_position_input: add a zero-initialised linear map of the box bias
            (the token's global grid position) to the box-MLP input. Tokens of
            a stitched map only know their position inside their window, yet
            a fixed pixel offset is a position-dependent offset in logit
            space; this input lets the MLP correct for it. Off reproduces OWL.
        layer_norm_eps: epsilon of the merge LayerNorm (OWL: 1e-5).
        prior_prob: initial class / objectness probability (focal-loss prior).
        logit_scale_init: initial per-token logit scale (``ELU(.) + 1`` starts
            here; the shift starts at ``logit(prior_prob) / logit_scale_init``).
            Cosines between class embeddings differ by tenths, so a scale of
            ~10 lets the first steps separate classes (CLIP-style temperatures
            are larger still); 1 is the plain ``Linear`` default.
    """

    def __init__(self,
                 in_channels: int,
                 embed_dim: int,
                 box_anchor: str = 'center',
                 context: str = 'image',
                 with_objectness: bool = True,
                 box_position_input: bool = False,
                 layer_norm_eps: float = 1e-5,
                 prior_prob: float = 0.01,
                 logit_scale_init: float = 10.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if box_anchor not in GRID_ANCHORS:
            raise ConfigError(f"unknown box_anchor '{box_anchor}'; choose from {GRID_ANCHORS}")
        if context not in CONTEXT_MODES:
            raise ConfigError(f"unknown context '{context}'; choose from {CONTEXT_MODES}")
        if not 0 < prior_prob < 1:
            raise ConfigError(f'prior_prob must be in (0, 1), got {prior_prob}')
        if logit_scale_init <= 0:
            raise ConfigError(f'logit_scale_init must be positive, got {logit_scale_init}')
        self.logit_scale_init = float(logit_scale_init)
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.box_anchor = box_anchor
        self.context = context
        self.prior_prob = prior_prob
        self.layer_norm = nn.LayerNorm(in_channels, eps=layer_norm_eps)
        self.class_head = OwlClassHead(in_channels, embed_dim)
        self.box_head = OwlMLP(in_channels, 4)
        self.objectness_head = OwlMLP(in_channels, 1) if with_objectness else None
        self.box_position = nn.Linear(4, in_channels) if box_position_input else None
        self._init_head()

    @property
    def with_objectness(self) -> bool:
        return self.objectness_head is not None

    def _init_head(self) -> None:
        """Boxes start at the token cells, scores at ``prior_prob``."""
        prior_logit = -math.log((1 - self.prior_prob) / self.prior_prob)
        s0 = self.logit_scale_init
        nn.init.zeros_(self.box_head.dense2.weight)
        nn.init.zeros_(self.box_head.dense2.bias)
        # ELU(b) + 1 = s0: b = s0 - 1 when s0 >= 1, else log(s0) (the ELU's negative branch)
        nn.init.zeros_(self.class_head.logit_scale.weight)
        nn.init.constant_(self.class_head.logit_scale.bias, s0 - 1 if s0 >= 1 else math.log(s0))
        nn.init.zeros_(self.class_head.logit_shift.weight)
        nn.init.constant_(self.class_head.logit_shift.bias, prior_logit / s0)
        if self.objectness_head is not None:
            nn.init.constant_(self.objectness_head.dense2.bias, prior_logit)
        if self.box_position is not None:
            nn.init.zeros_(self.box_position.weight)
            nn.init.zeros_(self.box_position.bias)

    def init_weights(self) -> None:
        """Keep the constructor's initialisation (a runner calls this after building)."""
        self._is_init = True

    # ------------------------------------------------------------- merging
    def merge(self, normed_tokens: Tensor, context: Optional[Tensor]) -> Tensor:
        """``LayerNorm(tokens * context)`` (OWL-ViT's patch x CLS merge), ``(B, H, W, D)``.

        ``normed_tokens`` are the tokens after the backbone's final norm
        (``fc_norm`` for ViTamin, ``post_layernorm`` for OWL's CLIP ViT);
        ``context`` broadcasts against them (``(B, 1, 1, D)`` for one vector
        per image, ``(B, H, W, D)`` for per-window contexts) or is None.
        """
        merged = normed_tokens if context is None else normed_tokens * context
        return self.layer_norm(merged)

    # --------------------------------------------------------------- heads
    def box_bias(self, grid_hw: Tuple[int, int], like: Tensor) -> Tensor:
        return grid_box_bias(grid_hw[0], grid_hw[1], self.box_anchor, like.device, like.dtype)

    def predict_boxes(self, features: Tensor) -> Tensor:
        """``(B, H, W, D)`` -> ``(B, H*W, 4)`` sigmoid ``cx, cy, w, h`` on the token grid."""
        b, h, w, d = features.shape
        flat = features.reshape(b, h * w, d)
        bias = self.box_bias((h, w), flat)
        if self.box_position is not None:
            flat = flat + self.box_position(bias)
        return torch.sigmoid(self.box_head(flat) + bias)

    def predict_objectness(self, features: Tensor) -> Tensor:
        """Objectness logits ``(B, H*W)`` from detached features (OWLv2)."""
        if self.objectness_head is None:
            raise ConfigError('this head was built with_objectness=False')
        b, h, w, d = features.shape
        return self.objectness_head(features.detach().reshape(b, h * w, d))[..., 0]

    def forward(self, features: Tensor, queries: Optional[Tensor] = None,
                query_mask: Optional[Tensor] = None,
                with_objectness: bool = True) -> Dict[str, Tensor]:
        """All head outputs for merged features ``(B, H, W, D)``.

        Returns a dict with ``boxes`` ``(B, N, 4)`` (normalised cxcywh on the
        grid), ``class_embeds`` ``(B, N, E)`` (unnormalised), ``logits``
        ``(B, N, Q)`` when ``queries`` are given, ``objectness`` ``(B, N)``
        when the head has one and ``with_objectness`` (inference that scores
        by class alone skips it), and ``grid_hw``.
        """
        b, h, w, d = features.shape
        if d != self.in_channels:
            raise ValueError(f'features have {d} channels, the head expects {self.in_channels}')
        flat = features.reshape(b, h * w, d)
        out: Dict[str, Tensor] = {'boxes': self.predict_boxes(features), 'grid_hw': (h, w)}
        if queries is not None:
            out['logits'], out['class_embeds'] = self.class_head(flat, queries, query_mask)
        else:
            out['class_embeds'] = self.class_head.embed(flat)
        if self.objectness_head is not None and with_objectness:
            out['objectness'] = self.predict_objectness(features)
        return out

    # ----------------------------------------------------------- interop
    def load_owlv2_head_state(self, state: Dict[str, Tensor]) -> None:
        """Load the head weights of a Hugging Face ``Owlv2ForObjectDetection`` state dict.

        Takes ``class_head.*``, ``box_head.*``, ``objectness_head.*`` and
        ``layer_norm.*`` (the merge LayerNorm); the vision tower is ignored.
        Use ``box_anchor='corner'`` to reproduce OWL's predictions exactly.
        """
        wanted = ('class_head.', 'box_head.', 'objectness_head.', 'layer_norm.')
        own = self.state_dict()
        mapped = {k: v for k, v in state.items() if k.startswith(wanted) and k in own}
        missing = [k for k in own if k not in mapped and not k.startswith('box_position.')]
        if missing:
            raise ConfigError(f'OWLv2 head state lacks {len(missing)} keys (e.g. {missing[0]}); '
                              'is it an Owlv2ForObjectDetection state dict of the same widths?')
        self.load_state_dict(mapped, strict=False)


__all__ = ['GRID_ANCHORS', 'CONTEXT_MODES', 'grid_box_bias', 'boxes_to_pixels', 'pixels_to_boxes',
           'masked_token_mean', 'OwlMLP', 'OwlClassHead', 'OwlDetectionHead']
