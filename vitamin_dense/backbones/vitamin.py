"""ViTamin image tower as a multi-scale, sliding-window dense backbone.

One window (the pretraining resolution) goes through the ViTamin trunk:

    stem (s2) -> MBConv stage 1 (s4, C) -> MBConv stage 2 (s8, 2C)
      -> strided conv (s16, D) -> ViT blocks with GeGLU MLP (s16, D)

and the backbone returns, stitched over sliding windows:

* ``s4``, ``s8``: the two MBConv stages,
* ``s16``: the final tokens (before ``fc_norm``) as a map,
* ``s32``: the stitched ``s16`` map max-pooled by 2 (``s32_mode='max_pool'``, as
  F-ViT) or subsampled, ``s16[..., ::2, ::2]`` (``'subsample'``, as Sliding FC-CLIP),
* ``clip``: the dense CLIP map, per token ``proj(fc_norm(token))`` (stride 16),
* optionally ``block{i}``: the tokens after ViT block ``i`` (stride 16).

ViTamin has no CLS token: the image embedding is ``proj(fc_norm(mean(tokens)))``,
so :meth:`ViTaminBackbone.mask_pool` pools tokens first and then applies
``fc_norm`` and ``proj``; an all-ones mask over one window gives open_clip's
``encode_image`` exactly.
"""
from __future__ import annotations

import logging
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import MODELS, register_openmmlab_alias
from .clip_loader import create_vitamin_clip, describe_weights
from .grad_checkpoint import checkpointed_window_fn, resolve_mode, run_units
from .sliding_window import (TOKEN_SIZE, check_placement, check_stride, chunk_size_for_budget,
                             sliding_window_forward)

logger = logging.getLogger(__name__)

LEVELS = ('s4', 's8', 's16', 's32')
LEVEL_STRIDES = {'s4': 4, 's8': 8, 's16': 16, 's32': 32, 'clip': 16}
S32_MODES = ('max_pool', 'subsample')


class ShapeSpec(Tuple[int, int]):
    """``(channels, stride)`` of one output, like detectron2's ShapeSpec."""

    def __new__(cls, channels: int, stride: int):
        return super().__new__(cls, (channels, stride))

    @property
    def channels(self) -> int:
        return self[0]

    @property
    def stride(self) -> int:
        return self[1]

    def __repr__(self) -> str:
        return f'ShapeSpec(channels={self[0]}, stride={self[1]})'


@MODELS.register_module()
@register_openmmlab_alias('mmdet', 'mmseg')
class ViTaminBackbone(BaseModule):
    """ViTamin trunk with a sliding-window feature extractor.

    Args:
        model_name: open_clip name of the variant (``'ViTamin-L-336'``, ...,
            or a tiny test variant such as ``'ViTamin-Tiny'``).
        weights: an open_clip pretrained tag (``'datacomp1b'``), a hub id
            (``'hf-hub:org/repo'``), a local file, or None for random init.
        train_stride: window stride in training mode (default: the window, no
            overlap, as FC-CLIP).
        test_stride: window stride in eval mode (default: the window; FC-CLIP
            used a third of it).
        frozen: no gradients into the trunk and the trunk always in eval mode.
        trainable_blocks: with ``frozen=False``, train only the last N ViT
            blocks (and what follows them); None trains everything.
        freeze_clip_head: keep ``fc_norm`` and ``proj`` frozen (the dense CLIP
            map then stays the pretrained one, as FC-CLIP needs).
        out_levels: which of ``s4 s8 s16 s32`` to return.
        with_clip_map: also return the dense CLIP map as ``'clip'``.
        out_block_indices: also return the tokens after these ViT blocks.
        return_tuple: return a tuple of the ``out_levels`` maps (what mmdet
            and mmseg necks expect) instead of a dict.
        max_windows_per_chunk: windows run together; overrides the budget.
        memory_budget_mb: size chunks so activations stay within this budget
            (and, on a CPU, no larger than runs fastest: see
            :func:`~vitamin_dense.backbones.sliding_window.chunk_size_for_budget`).
        shared_conv: compute the stem and MBConv stages once over the whole
            image and crop them per window (faster with overlapping windows;
            features differ near window borders; off in every published recipe;
            ``'aligned'`` placement only).
        grad_checkpointing: recompute activations in the backward pass when
            fine-tuning, so memory stays bounded: ``'chunk'`` (each chunk of
            windows; what True means), ``'block'`` (the stem, every MBConv
            and ViT block), ``'both'``, or False (see ``grad_checkpoint.py``).
        s32_mode: how ``s32`` is made from the stitched ``s16`` map:
            ``'max_pool'`` (2x2 max-pool, as the ViTamin F-ViT port) or
            ``'subsample'`` (every second token, as the Sliding FC-CLIP port).
        progress: progress bar when an image has many windows.
        cache_dir: where hub downloads go (default: Hugging Face's cache).
        window_placement: ``'aligned'`` (strides are multiples of 16 px) or
            ``'published'``: the released Sliding F-ViT's placement (any stride,
            outputs placed at ``floor(offset / stride)``, see
            :mod:`.sliding_window`), whose dense CLIP map is
            ``proj(fc_norm(.))`` of the window-averaged tokens instead of the
            average of per-window projections.
    """

    def __init__(self,
                 model_name: str = 'ViTamin-L-336',
                 weights: Optional[str] = 'datacomp1b',
                 train_stride: Optional[int] = None,
                 test_stride: Optional[int] = None,
                 frozen: bool = True,
                 trainable_blocks: Optional[int] = None,
                 freeze_clip_head: bool = True,
                 out_levels: Sequence[str] = LEVELS,
                 with_clip_map: bool = True,
                 out_block_indices: Sequence[int] = (),
                 return_tuple: bool = False,
                 max_windows_per_chunk: Optional[int] = None,
                 memory_budget_mb: Optional[float] = 2048,
                 shared_conv: bool = False,
                 grad_checkpointing: Union[bool, str] = False,
                 progress: bool = False,
                 cache_dir: Optional[str] = None,
                 s32_mode: str = 'max_pool',
                 window_placement: str = 'aligned',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.window_placement = check_placement(window_placement)
        unknown = [lvl for lvl in out_levels if lvl not in LEVELS]
        if unknown:
            raise ConfigError(f'unknown output level(s) {unknown}; choose from {list(LEVELS)}')
        if s32_mode not in S32_MODES:
            raise ConfigError(f"unknown s32_mode '{s32_mode}'; choose from {list(S32_MODES)}")
        self.s32_mode = s32_mode
        clip_model, variant = create_vitamin_clip(model_name, weights, cache_dir=cache_dir)
        self.model_name = model_name
        self.weights = describe_weights(weights)
        self.variant = variant
        self.visual = clip_model.visual
        self.logit_scale_init = 1 / 0.07 if clip_model.logit_scale.is_meta else \
            float(clip_model.logit_scale.exp().item())
        del clip_model  # the text tower is the text encoder's business
        trunk = self.trunk
        if trunk.num_prefix_tokens:
            raise ConfigError(f'{model_name}: expected no CLS/register tokens in ViTamin')
        self.window_size = variant.window_size
        self.train_stride = self._check_stride(train_stride or self.window_size)
        self.test_stride = self._check_stride(test_stride or self.window_size)
        depth = len(trunk.blocks)
        bad = [i for i in out_block_indices if not -depth <= i < depth]
        if bad:
            raise ConfigError(f'{model_name} has {depth} ViT blocks; bad out_block_indices {bad}')
        self.out_block_indices = tuple(i % depth for i in out_block_indices)
        self.out_levels = tuple(out_levels)
        self.with_clip_map = with_clip_map
        self.return_tuple = return_tuple
        self.progress = progress
        conv = trunk.patch_embed.backbone
        self.channels = {
            's4': conv.stages[0][-1].out_chs,
            's8': conv.stages[1][-1].out_chs,
            's16': trunk.embed_dim,
            's32': trunk.embed_dim,
            'clip': self.visual.head.proj.out_features,
        }
        self._per_window_bytes = self._estimate_window_bytes()
        chunk_size_for_budget(self._per_window_bytes, memory_budget_mb)  # checks the budget
        self.memory_budget_mb = memory_budget_mb
        self.max_windows_per_chunk = max_windows_per_chunk  # None: per device, see the property
        if shared_conv and self.window_placement != 'aligned':
            raise ConfigError("shared_conv needs window_placement='aligned' (windows on the "
                              f'token grid), got {self.window_placement!r}')
        self.shared_conv = shared_conv
        self.frozen = frozen
        self.freeze_clip_head = freeze_clip_head
        self.trainable_blocks = trainable_blocks
        self._set_trainable()
        self.grad_checkpointing = resolve_mode(grad_checkpointing)
        self._chunk_fixed = max_windows_per_chunk is not None
        self._memory_budget_mb = memory_budget_mb
        self._grad_chunk: Optional[int] = None  # windows per chunk with gradients (lazy)
        if self.grad_checkpointing in ('block', 'both'):
            trunk.set_grad_checkpointing(True)  # also when the trunk is called on its own
        # ImageNet-style normalisation of the CLIP preprocessing, on a 0-255 scale.
        cfg = self.visual.preprocess_cfg if hasattr(self.visual, 'preprocess_cfg') else {}
        mean = cfg.get('mean', (0.48145466, 0.4578275, 0.40821073))
        std = cfg.get('std', (0.26862954, 0.26130258, 0.27577711))
        self.pixel_mean = tuple(float(m) * 255 for m in mean)
        self.pixel_std = tuple(float(s) * 255 for s in std)
        logger.info('%s (%s): window %d, strides train %d / test %d, %s', model_name,
                    self.weights, self.window_size, self.train_stride, self.test_stride,
                    'frozen' if frozen else f'trainable blocks: {trainable_blocks or "all"}')

    # ------------------------------------------------------------------ set-up
    def _check_stride(self, stride: int) -> int:
        return check_stride(stride, self.window_size, placement=self.window_placement)

    def _placement_kwargs(self) -> dict:
        """``sliding_window_forward`` arguments of the placement (none for the default, so
        callers that wrap the stitcher, e.g. the ONNX export, see today's call)."""
        return {} if self.window_placement == 'aligned' else {'placement': self.window_placement}

    @property
    def trunk(self) -> nn.Module:
        return self.visual.trunk

    def init_weights(self) -> None:
        """Weights are loaded at construction; never let a runner re-initialise them."""
        self._is_init = True

    def _set_trainable(self) -> None:
        for p in self.visual.parameters():
            p.requires_grad = not self.frozen
        if not self.frozen and self.trainable_blocks is not None:
            n = int(self.trainable_blocks)
            depth = len(self.trunk.blocks)
            if not 0 <= n <= depth:
                raise ConfigError(f'trainable_blocks must be in [0, {depth}], got {n}')
            for p in self.visual.parameters():
                p.requires_grad = False
            for blk in list(self.trunk.blocks)[depth - n:]:
                for p in blk.parameters():
                    p.requires_grad = True
            for p in self.trunk.norm.parameters():
                p.requires_grad = n > 0
        if self.freeze_clip_head:
            for module in (self.trunk.fc_norm, self.visual.head):
                for p in module.parameters():
                    p.requires_grad = False
        if self.frozen:
            self.visual.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.visual.eval()  # LayerNorms have no running stats, but dropout / drop-path do act
        return self

    def output_shape(self) -> Dict[str, ShapeSpec]:
        """Channels and stride of each output, as detectron2 backbones report them."""
        names = list(self.out_levels) + (['clip'] if self.with_clip_map else [])
        names += [f'block{i}' for i in self.out_block_indices]
        return {n: ShapeSpec(self.channels.get(n, self.channels['s16']),
                             LEVEL_STRIDES.get(n, TOKEN_SIZE)) for n in names}

    @property
    def out_channels(self) -> List[int]:
        """Channels of ``out_levels`` in order (for mmdet/mmseg necks)."""
        return [self.channels[lvl] for lvl in self.out_levels]

    @property
    def out_strides(self) -> List[int]:
        return [LEVEL_STRIDES[lvl] for lvl in self.out_levels]

    @property
    def clip_dim(self) -> int:
        return self.channels['clip']

    @property
    def stride(self) -> int:
        """Window stride used in the current mode."""
        return self.train_stride if self.training else self.test_stride

    @property
    def max_windows_per_chunk(self) -> int:
        """Windows run together: the explicit setting, else what runs fastest on
        the backbone's device within the memory budget."""
        if self._max_windows_per_chunk:
            return self._max_windows_per_chunk
        device = next(self.visual.parameters()).device
        return chunk_size_for_budget(self._per_window_bytes, self.memory_budget_mb, device=device)

    @max_windows_per_chunk.setter
    def max_windows_per_chunk(self, value: Optional[int]) -> None:
        self._max_windows_per_chunk = value

    def _estimate_window_bytes(self) -> int:
        """Peak activation bytes of one window without gradients (float32).

        The largest live set is in the first MBConv block of a stage: its
        1x1 expansion (4x the channels) runs at the stage's *input*
        resolution, and the conv output and its GELU output coexist with the
        block input and its shortcut. (Measured on CPU for Tiny / S / B this
        is within 10% of the sampled RSS; an earlier count of one quarter
        of that resolution underestimated the peak about 2.8x.)
        """
        w = self.window_size
        n = (w // TOKEN_SIZE) ** 2
        d = self.channels['s16']
        c = self.channels['s4']
        heads = getattr(self.trunk.blocks[0].attn, 'num_heads', 1)
        conv_peak, res = 0, w // 2  # the stem works at stride 2
        for stage in self.trunk.patch_embed.backbone.stages:
            for block in stage:
                expand = getattr(block, 'conv1_1x1', None)
                dw = getattr(block, 'conv2_kxk', None)
                if expand is None or dw is None:
                    continue
                live = (2 * expand.out_channels + 2 * expand.in_channels) * res * res
                conv_peak = max(conv_peak, live)
                res = -(-res // dw.stride[0])
        if conv_peak == 0:  # unknown block layout: the old rough count, with a margin
            conv_peak = 36 * c * (w // 4) ** 2
        vit_peak = 8 * n * d + 2 * heads * n * n
        kept = c * (w // 4) ** 2 + 2 * c * (w // 8) ** 2 + 2 * n * d + n * self.channels['clip']
        kept += 3 * w * w  # the window itself, stacked into the chunk's batch
        return 4 * (max(conv_peak, vit_peak) + kept)

    # ----------------------------------------------------------------- forward
    def forward_conv(self, x: Tensor) -> Dict[str, Tensor]:
        """The stem and MBConv stages (``s4``, ``s8``) of windows or of a whole image."""
        conv = self.trunk.patch_embed.backbone
        per_block = self.grad_checkpointing in ('block', 'both') and torch.is_grad_enabled()
        s2 = run_units([conv.stem], x, per_block)
        s4 = run_units(conv.stages[0], s2, per_block)
        s8 = run_units(conv.stages[1], s4, per_block)
        return {'s4': s4, 's8': s8}

    def forward_window(self, x: Union[Tensor, Dict[str, Tensor]]) -> Dict[str, Tensor]:
        """Features of windows at exactly the pretraining resolution.

        ``x``: normalised ``(n, 3, W, W)``, or (shared-convolution mode) the
        windows' crops of :meth:`forward_conv`'s whole-image ``s4`` and ``s8``.
        Returns maps for ``s4``, ``s8``, ``s16`` (pre-``fc_norm`` tokens),
        optionally ``clip`` and ``block{i}``.
        """
        w = self.window_size
        if not isinstance(x, dict) and x.shape[-2:] != (w, w):
            raise ValueError(f'forward_window expects {w}x{w} windows, got {tuple(x.shape[-2:])}')
        trunk = self.trunk
        conv = trunk.patch_embed.backbone
        per_block = self.grad_checkpointing in ('block', 'both') and torch.is_grad_enabled()
        conv_maps = x if isinstance(x, dict) else self.forward_conv(x)
        s4, s8 = conv_maps['s4'], conv_maps['s8']
        tokens = trunk.patch_embed.proj(conv.pool(s8))
        n, d, h, wt = tokens.shape
        tokens = tokens.flatten(2).transpose(1, 2)
        tokens = trunk.norm_pre(trunk.patch_drop(trunk._pos_embed(tokens)))
        extra = {}

        def tap(i: int, out: Tensor) -> None:
            extra[f'block{i}'] = out.transpose(1, 2).reshape(n, d, h, wt)
        tokens = run_units(trunk.blocks, tokens, per_block, self.out_block_indices, tap)
        tokens = trunk.norm(tokens)
        out = {'s4': s4, 's8': s8, 's16': tokens.transpose(1, 2).reshape(n, d, h, wt)}
        if self.with_clip_map:
            clip = self.clip_project(tokens)
            out['clip'] = clip.transpose(1, 2).reshape(n, -1, h, wt)
        out.update(extra)
        return out

    def forward(self, images: Tensor, stride: Optional[int] = None
                ) -> Union[Dict[str, Tensor], Tuple[Tensor, ...]]:
        """Stitched multi-scale features of normalised images of any size.

        Args:
            images: ``(B, 3, H, W)``, normalised with :attr:`pixel_mean` / :attr:`pixel_std`.
            stride: window stride; default :attr:`train_stride` in training
                mode, :attr:`test_stride` in eval mode.
        """
        stride = self._check_stride(stride) if stride else self.stride
        keep = list(self.out_levels) + (['clip'] if self.with_clip_map else [])
        keep += [f'block{i}' for i in self.out_block_indices]
        # Stitch only what is returned: a full-resolution s4 map of a large
        # image is by far the biggest buffer, and the CLIP-only users (the
        # training-free segmentor) never need it.
        needed = set(keep) | ({'s16'} if 's32' in keep else set())
        # 'published': the CLIP map is projected after stitching the tokens.
        project_after = self.with_clip_map and self.window_placement == 'published'
        if project_after:
            needed = (needed - {'clip'}) | {'s16'}

        def window_fn(x: Tensor) -> Dict[str, Tensor]:
            return {k: v for k, v in self.forward_window(x).items() if k in needed}

        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.visual.parameters())
        chunk = self.max_windows_per_chunk
        if grad and self.grad_checkpointing in ('chunk', 'both'):
            window_fn = checkpointed_window_fn(window_fn)
        if grad and self.grad_checkpointing:
            chunk = self.grad_windows_per_chunk()
        with torch.set_grad_enabled(grad):
            maps = sliding_window_forward(images, window_fn, self.window_size, stride,
                                          chunk, progress=self.progress,
                                          **self._shared_mode(), **self._placement_kwargs())
        if project_after:
            with torch.set_grad_enabled(grad):
                maps['clip'] = self.clip_project(maps['s16'].permute(0, 2, 3, 1)
                                                 ).permute(0, 3, 1, 2)
        if 's32' in self.out_levels:
            maps['s32'] = maps['s16'][..., ::2, ::2] if self.s32_mode == 'subsample' else \
                F.max_pool2d(maps['s16'], kernel_size=2, stride=2, ceil_mode=True)
        maps = {k: maps[k] for k in keep}
        if self.return_tuple:
            return tuple(maps[lvl] for lvl in self.out_levels)
        return maps

    def _shared_mode(self) -> Dict[str, object]:
        """``sliding_window_forward``'s extra argument in shared-convolution mode (none
        otherwise, so that the default call is what tools wrapping it expect)."""
        return {'shared_fn': self.forward_conv} if self.shared_conv else {}

    def grad_windows_per_chunk(self) -> int:
        """Windows per chunk while fine-tuning with gradient checkpointing.

        A recomputed chunk holds its whole forward graph (every activation the
        backward pass needs), several times the no-gradient peak the budget
        otherwise sizes chunks by, so chunks get smaller. An explicit
        ``max_windows_per_chunk`` is kept as given.
        """
        if self._chunk_fixed or self._memory_budget_mb is None:
            return self.max_windows_per_chunk
        if self._grad_chunk is None:
            from .grad_checkpoint import window_graph_bytes
            try:
                graph = window_graph_bytes(self)
            except Exception as exc:  # an op without a meta kernel: a measured-ratio guess
                graph = 8 * self._per_window_bytes
                logger.warning('could not size the window graph on the meta device (%s); '
                               'assuming %.0f MB per window', exc, graph / 2 ** 20)
            self._grad_chunk = chunk_size_for_budget(graph, self._memory_budget_mb)
        return self._grad_chunk

    # -------------------------------------------------------------- CLIP space
    def clip_project(self, tokens: Tensor) -> Tensor:
        """``proj(fc_norm(tokens))`` over the last dimension: into the joint CLIP space."""
        return self.visual.head(self.trunk.head_drop(self.trunk.fc_norm(tokens)))

    def mask_pool(self, masks: Tensor, tokens: Tensor, eps: float = 1e-6) -> Tensor:
        """CLIP embeddings of masked regions (not normalised).

        Args:
            masks: soft or binary ``(B, Q, h, w)`` at any resolution (resized
                bilinearly to the token grid).
            tokens: the ``s16`` map ``(B, D, H16, W16)`` of the same images.

        Returns:
            ``(B, Q, E)``: ``proj(fc_norm(sum(m * t) / sum(m)))``.
        """
        if masks.shape[-2:] != tokens.shape[-2:]:
            masks = F.interpolate(masks.to(tokens.dtype), size=tokens.shape[-2:],
                                  mode='bilinear', align_corners=False)
        masks = masks.to(tokens.dtype)
        pooled = torch.einsum('bqhw,bdhw->bqd', masks, tokens)
        pooled = pooled / (masks.sum(dim=(-2, -1))[..., None] + eps)
        return self.clip_project(pooled)

    def encode_image(self, images: Tensor, stride: Optional[int] = None) -> Tensor:
        """Whole-image CLIP embeddings (mean of the stitched tokens), not normalised."""
        stride = self._check_stride(stride) if stride else self.stride
        tokens = sliding_window_forward(
            images, lambda x: {'s16': self.forward_window(x)['s16']}, self.window_size, stride,
            self.max_windows_per_chunk, **self._shared_mode(),
            **self._placement_kwargs())['s16']
        ones = tokens.new_ones(tokens.shape[0], 1, *tokens.shape[-2:])
        return self.mask_pool(ones, tokens)[:, 0]

    # ------------------------------------------------------------ optimisation
    def get_layer_id(self, param_name: str) -> Tuple[int, int]:
        """Layer index of a parameter for layer-wise lr decay, and the layer count.

        Layers, in order: the stem and MBConv stage 1 (0), MBConv stage 2 and
        the strided conv with the position embedding (1), ViT block i (i + 2),
        and the final norms and projection (depth + 2).
        """
        name = param_name.split('visual.', 1)[-1]
        depth = len(self.trunk.blocks)
        num_layers = depth + 3
        if re.match(r'trunk\.patch_embed\.backbone\.(stem|stages\.0)\.', name):
            return 0, num_layers
        if name.startswith(('trunk.patch_embed', 'trunk.pos_embed', 'trunk.norm_pre')):
            return 1, num_layers
        match = re.match(r'trunk\.blocks\.(\d+)\.', name)
        if match:
            return int(match.group(1)) + 2, num_layers
        return num_layers - 1, num_layers
