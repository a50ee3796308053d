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

The box frame: boxes are normalised to a *square* frame anchored at the
top-left pixel, whatever the image's aspect ratio, as OWL-ViT / OWLv2 pad every
image to a square at training and at evaluation (scenic ``resize_with_pad``,
Hugging Face ``Owlv2ImageProcessor.pad``). A frame of ``F`` tokens covers
``[0, 16 F)`` on both axes; the token ``(i, j)`` of any grid inside it gets the
bias of its own cell in that frame. The detector chooses ``F`` per image from
the image's own size (never from the batch padding), so a non-square image's
learned offsets decode to the same pixels in training (padded canvas) and at
test (see :class:`~vitamin_dense.models.OwlDetector` ``frame_size``). Without
a frame the square of the grid's longer side is used.

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
HEAD_INITS = ('owl', 'scaled')


# ----------------------------------------------------------------- box bias
def grid_box_bias(height: int, width: int, anchor: str = 'center',
                  device: Optional[torch.device] = None,
                  dtype: torch.dtype = torch.float32,
                  frame: Optional[int] = None) -> Tensor:
    """Fixed box bias of an ``height x width`` token grid, ``(height * width, 4)``.

    Row-major over the grid (the order of ``tokens.flatten``). Each row is
    ``logit(x), logit(y), logit(1 / n), logit(1 / n)``: the logit of the
    token's position normalised to a square frame of ``n = frame`` tokens and
    of the token size, so that a zero MLP output decodes (after the sigmoid)
    to the token's own cell.

    Args:
        anchor: ``'center'`` puts the bias at the token centre
            ``((j + 0.5) / n, (i + 0.5) / n)`` with an exact logit (the
            default of this toolkit); ``'corner'`` reproduces OWL-ViT / OWLv2
            (scenic and Hugging Face): the token's bottom-right corner
            ``((j + 1) / n, (i + 1) / n)``, clipped to ``[0, 1]`` and with
            ``logit(p) = log(p + 1e-4) - log1p(-p + 1e-4)``, needed to use OWL
            weights but saturating for the frame's last row and column.
        frame: side of the square frame in tokens; default ``max(height,
            width)``. Tokens outside the frame (batch padding beyond it) are
            clamped to its last cell. A ``(frame_h, frame_w)`` tuple normalises
            the axes separately (Hugging Face's bias for interpolated,
            non-square grids).
    """
    if height < 1 or width < 1:
        raise ValueError(f'a token grid needs at least one token, got {height}x{width}')
    if frame is None:
        frame = max(height, width)
    fh, fw = (int(frame[0]), int(frame[1])) if isinstance(frame, tuple) else (int(frame),) * 2
    if fh < 1 or fw < 1:
        raise ValueError(f'a box frame needs at least one token, got {frame}')
    return _grid_box_bias(int(height), int(width), anchor, fh, fw).to(device=device, dtype=dtype)


@lru_cache(maxsize=64)
def _grid_box_bias(height: int, width: int, anchor: str, fh: int, fw: int) -> Tensor:
    if anchor not in GRID_ANCHORS:
        raise ConfigError(f"unknown box-bias anchor '{anchor}'; choose from {GRID_ANCHORS}")
    offset = 0.5 if anchor == 'center' else 1.0
    # OWL computes its (corner) bias in float32: do the same to reproduce it bit for bit
    dtype = torch.float64 if anchor == 'center' else torch.float32
    xs = (torch.arange(width, dtype=dtype).clamp(max=fw - 1) + offset) / fw
    ys = (torch.arange(height, dtype=dtype).clamp(max=fh - 1) + offset) / fh
    yy, xx = torch.meshgrid(ys, xs, indexing='ij')
    xy = torch.stack((xx, yy), dim=-1).reshape(-1, 2)
    wh = torch.tensor([1.0 / fw, 1.0 / fh], dtype=dtype).expand_as(xy)
    if anchor == 'corner':
        xy = xy.clamp(0.0, 1.0)
        eps = 1e-4
        logit = lambda p: torch.log(p + eps) - torch.log1p(-p + eps)  # noqa: E731
    else:
        logit = lambda p: torch.log(p) - torch.log1p(-p)  # noqa: E731
        # a frame one token wide has size 1, whose exact logit is +inf: cap it
        wh = wh.clamp(max=1.0 - 1e-6)
    return torch.cat((logit(xy), logit(wh)), dim=-1).float()


def _frame_scale(boxes: Tensor, frame, token_size: int) -> Tensor:
    """Pixels per normalised unit, broadcastable against ``boxes`` ``(..., 4)``.

    ``frame``: a square frame side in tokens (int, or a ``(B,)`` tensor / list
    for a batch ``(B, N, 4)``), or a ``(height, width)`` tuple of tokens for a
    per-axis (non-square) frame.
    """
    if isinstance(frame, tuple):
        h, w = frame
        return boxes.new_tensor([w * token_size, h * token_size] * 2)
    side = torch.as_tensor(frame, dtype=boxes.dtype, device=boxes.device) * token_size
    if side.dim() == 0:
        return side
    return side.reshape(-1, *([1] * (boxes.dim() - 1)))


def boxes_to_pixels(boxes: Tensor, frame, token_size: int = 16) -> Tensor:
    """Normalised ``cx, cy, w, h`` in a box frame -> ``x1, y1, x2, y2`` in input pixels.

    ``frame`` is the square frame side in tokens (an int, or one per image of
    a batch); a ``(height, width)`` tuple scales the axes separately.
    """
    from torchvision.ops import box_convert
    return box_convert(boxes, 'cxcywh', 'xyxy') * _frame_scale(boxes, frame, token_size)


def pixels_to_boxes(boxes_xyxy: Tensor, frame, token_size: int = 16) -> Tensor:
    """Inverse of :func:`boxes_to_pixels`."""
    from torchvision.ops import box_convert
    return box_convert(boxes_xyxy / _frame_scale(boxes_xyxy, frame, token_size), 'xyxy', 'cxcywh')


# ------------------------------------------------------------- CLS stand-in
def masked_token_mean(tokens: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """Mean over the valid tokens of ``(B, H, W, D)`` -> ``(B, D)``."""
    if valid is None:
        return tokens.mean(dim=(1, 2))
    weights = valid.to(tokens.dtype)[..., None]
    return (tokens * weights).sum(dim=(1, 2)) / weights.sum(dim=(1, 2)).clamp_min(1.0)


def lecun_normal_(weight: Tensor) -> Tensor:
    """Flax's default kernel init: truncated normal (2 std), variance ``1 / fan_in``."""
    std = math.sqrt(1.0 / weight.shape[1]) / 0.87962566103423978
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


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
        prior_prob: initial class probability (focal-loss prior; OWL: 0.01).
        init: ``'owl'`` (scenic's OWL-ViT initialisation: LeCun-normal hidden
            layers, zero last layers of the box and objectness MLPs, class
            projection ~N(0, 1e-6), logit shift bias ``logit(prior_prob)``,
            logit scale ``ELU(LeCun-normal . x) + 1``) or ``'scaled'`` (every
            token starts at the same logit scale ``logit_scale_init`` and shift
            ``logit(prior_prob) / logit_scale_init``; the objectness bias at
            ``logit(prior_prob)``; PyTorch's default init elsewhere).
        logit_scale_init: the starting logit scale of ``init='scaled'``.
            Cosines between class embeddings differ by tenths, so a scale of
            ~10 lets the first steps separate classes.
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
                 init: str = 'owl',
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
        if init not in HEAD_INITS:
            raise ConfigError(f"unknown head init '{init}'; choose from {HEAD_INITS}")
        self.init_mode = init
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
        """Boxes start at the token cells, class scores at ``prior_prob`` (see ``init``)."""
        prior_logit = -math.log((1 - self.prior_prob) / self.prior_prob)
        last_layers = [self.box_head.dense2]
        if self.objectness_head is not None:
            last_layers.append(self.objectness_head.dense2)
        if self.init_mode == 'owl':
            hidden = [self.box_head.dense0, self.box_head.dense1]
            if self.objectness_head is not None:
                hidden += [self.objectness_head.dense0, self.objectness_head.dense1]
            for layer in hidden + [self.class_head.logit_shift, self.class_head.logit_scale]:
                lecun_normal_(layer.weight)
                nn.init.zeros_(layer.bias)
            for layer in last_layers:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
            nn.init.normal_(self.class_head.dense0.weight, std=1e-6)
            nn.init.zeros_(self.class_head.dense0.bias)
            nn.init.constant_(self.class_head.logit_shift.bias, prior_logit)
        else:
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
    def box_bias(self, grid_hw: Tuple[int, int], like: Tensor,
                 frame: Optional[int] = None) -> Tensor:
        return grid_box_bias(grid_hw[0], grid_hw[1], self.box_anchor, like.device, like.dtype,
                             frame=frame)

    def frames_for(self, features: Tensor, frames=None) -> Tensor:
        """``(B,)`` square frame side in tokens per image (default: the grid's longer side)."""
        b, h, w = features.shape[:3]
        if frames is None:
            return torch.full((b,), max(h, w), dtype=torch.long)
        frames = torch.as_tensor(frames, dtype=torch.long).reshape(-1).cpu()
        if frames.numel() == 1:
            frames = frames.expand(b)
        if frames.numel() != b or (frames < 1).any():
            raise ValueError(f'need one positive frame size per image ({b}), got {frames.tolist()}')
        return frames

    def predict_boxes(self, features: Tensor, frames=None) -> Tensor:
        """``(B, H, W, D)`` -> ``(B, H*W, 4)`` sigmoid ``cx, cy, w, h`` in each image's frame.

        ``frames``: per image (or one for all) the side of its square box frame
        in tokens; default the grid's longer side.
        """
        b, h, w, d = features.shape
        flat = features.reshape(b, h * w, d)
        frames = self.frames_for(features, frames)
        sides = frames.unique()
        if len(sides) == 1:
            bias = self.box_bias((h, w), flat, int(sides[0])).expand(b, -1, -1)
        else:
            per_side = {int(f): self.box_bias((h, w), flat, int(f)) for f in sides}
            bias = torch.stack([per_side[int(f)] for f in frames])
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
                with_objectness: bool = True, frames=None) -> Dict[str, Tensor]:
        """All head outputs for merged features ``(B, H, W, D)``.

        Returns a dict with ``boxes`` ``(B, N, 4)`` (normalised cxcywh in each
        image's square frame), ``frames`` ``(B,)`` (that frame's side in
        tokens; pixels are ``16 * frames``), ``class_embeds`` ``(B, N, E)``
        (unnormalised), ``logits`` ``(B, N, Q)`` when ``queries`` are given,
        ``objectness`` ``(B, N)`` when the head has one and ``with_objectness``
        (inference that scores by class alone skips it), and ``grid_hw``.
        """
        b, h, w, d = features.shape
        if d != self.in_channels:
            raise ValueError(f'features have {d} channels, the head expects {self.in_channels}')
        flat = features.reshape(b, h * w, d)
        frames = self.frames_for(features, frames)
        out: Dict[str, Tensor] = {'boxes': self.predict_boxes(features, frames), 'frames': frames,
                                  'grid_hw': (h, w)}
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


__all__ = ['GRID_ANCHORS', 'CONTEXT_MODES', 'HEAD_INITS', 'grid_box_bias', 'lecun_normal_', 'boxes_to_pixels', 'pixels_to_boxes',
           'masked_token_mean', 'OwlMLP', 'OwlClassHead', 'OwlDetectionHead']
