"""Multi-scale deformable attention (Deformable DETR), with a pure-PyTorch path.

Each query attends to ``num_points`` sampled locations per head and per level,
around a reference point, with offsets and weights predicted from the query.
Two pure-PyTorch paths need nothing but torch, so the pixel decoder runs on a
plain install (CPU or GPU):

* :func:`ms_deform_attn_pytorch` (``impl='pytorch'``): the bilinear samples as
  one weighted gather (``F.embedding_bag``: each (query, head) is a bag of
  ``levels x points x 4`` value rows, weighted by attention times the corner's
  bilinear weight); about half the time of ``grid_sample`` on a CPU;
* :func:`ms_deform_attn_grid_sample` (``impl='grid_sample'``): one
  ``grid_sample`` per level, as mmcv's ``multi_scale_deformable_attn_pytorch``.

:func:`ms_deform_attn` uses mmcv's compiled kernel instead when it is present
for the tensors' device (mmcv 2.1 ships CUDA and MLU kernels only; on CPU the
PyTorch path is used).

:class:`MSDeformAttn` has the parameter names and layout of mmcv's
``MultiScaleDeformableAttention`` (and detectron2's ``MSDeformAttn``), so
weights port one to one; ``tests/test_seg_heads.py`` checks both against
mmcv's reference.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

SpatialShapes = Union[Tensor, Sequence[Tuple[int, int]]]
IMPLEMENTATIONS = ('auto', 'pytorch', 'grid_sample', 'mmcv')


def _shape_list(spatial_shapes: SpatialShapes) -> List[Tuple[int, int]]:
    if isinstance(spatial_shapes, Tensor):
        return [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    return [(int(h), int(w)) for h, w in spatial_shapes]


def ms_deform_attn_pytorch(value: Tensor, spatial_shapes: SpatialShapes,
                           sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """Multi-scale deformable attention as one weighted gather (no compiled ops).

    Arguments, result and sampling convention as :func:`ms_deform_attn_grid_sample`.
    Each sample's four bilinear corners become rows of a table of the values
    (one block per image and head); the corners outside the map get weight 0.
    ``F.embedding_bag`` then sums, per (query, head), the rows times
    ``attention weight x corner weight``; gradients reach the values, the
    attention weights and (through the corner weights) the sampling locations.
    """
    shapes = _shape_list(spatial_shapes)
    b, nv, heads, dim = value.shape
    _, nq, _, levels, points, _ = sampling_locations.shape
    if len(shapes) != levels:
        raise ValueError(f'{len(shapes)} spatial shapes for {levels} levels')
    table = value.transpose(1, 2).reshape(b * heads * nv, dim)
    # queries in blocks, so that the index arithmetic stays in a CPU's cache
    block = _GATHER_BLOCK * (1 if value.device.type == 'cpu' else 64)
    step = max(1, block // max(1, b * heads * levels * points))
    return torch.cat([_gather_block(table, shapes, b, nv, heads, sampling_locations[:, i:i + step],
                                    attention_weights[:, i:i + step])
                      for i in range(0, nq, step)], 1)


_GATHER_BLOCK = 2 ** 14  # samples per block of queries (on a CPU; 64 times more elsewhere)


def _gather_block(table: Tensor, shapes: List[Tuple[int, int]], b: int, nv: int, heads: int,
                  sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """:func:`ms_deform_attn_pytorch` for a block of queries, over the whole value table."""
    _, nq, _, levels, points, _ = sampling_locations.shape
    dim = table.shape[1]
    device, dtype = table.device, sampling_locations.dtype
    index_dtype = torch.int32 if b * heads * nv < 2 ** 31 else torch.long
    # Work level-major, (axis, level, B, Nq, heads, P): every broadcast below is
    # over leading dimensions, so the elementwise kernels run over long
    # contiguous rows (a small trailing broadcast dimension is many times slower).
    loc = sampling_locations.permute(5, 3, 0, 1, 2, 4)
    shape = (levels, 1, 1, 1, 1)
    widths = torch.tensor([w for _, w in shapes], device=device).view(shape)
    heights = torch.tensor([h for h, _ in shapes], device=device).view(shape)
    starts = torch.tensor([0] + [h * w for h, w in shapes], device=device).cumsum(0)[:-1]
    # first row of the (level, image, head) block of the value table
    base = ((torch.arange(b, device=device).view(1, b, 1, 1, 1) * heads +
             torch.arange(heads, device=device).view(1, 1, 1, heads, 1)) * nv +
            starts.view(shape)).to(index_dtype)

    def axis(pos: Tensor, size: Tensor):
        """The two neighbouring pixels along one axis: clamped indices and
        bilinear weights (zero for a pixel outside the map), each ``(2, L, ...)``."""
        pos = pos * size.to(dtype) - 0.5  # pixel centres at integers
        lower = pos.floor()
        frac = pos - lower
        pixels = torch.stack([lower, lower + 1])
        weights = torch.stack([1 - frac, frac]) * ((pixels >= 0) & (pixels < size))
        index = torch.minimum(pixels.clamp_min(0), (size - 1).to(dtype)).to(index_dtype)
        return index, weights

    x, wx = axis(loc[0], widths)
    y, wy = axis(loc[1], heights)
    rows = (base + y * widths.to(index_dtype))[:, None] + x[None]  # (2, 2, L, B, Nq, heads, P)
    weights = (attention_weights.permute(3, 0, 1, 2, 4) * wy)[:, None] * wx[None]
    # bags of (image, query, head): its levels x points x 4 corners
    bag = levels * points * 4
    rows = rows.permute(3, 4, 5, 0, 1, 2, 6).reshape(-1, bag)
    weights = weights.permute(3, 4, 5, 0, 1, 2, 6).reshape(-1, bag)
    out = F.embedding_bag(rows, table, mode='sum', per_sample_weights=weights.to(table.dtype))
    return out.view(b, nq, heads * dim)


def ms_deform_attn_grid_sample(value: Tensor, spatial_shapes: SpatialShapes,
                               sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """Multi-scale deformable attention with ``grid_sample`` (no compiled ops).

    Args:
        value: ``(B, sum(H_l * W_l), heads, head_dim)``, levels concatenated.
        spatial_shapes: ``(H_l, W_l)`` of each level, as a tensor or a list.
        sampling_locations: ``(B, Nq, heads, levels, points, 2)``, ``(x, y)``
            normalised to ``[0, 1]`` over each level's map.
        attention_weights: ``(B, Nq, heads, levels, points)``.

    Returns:
        ``(B, Nq, heads * head_dim)``.

    Samples outside the map read zeros (``padding_mode='zeros'``), pixel
    centres at ``(i + 0.5) / size`` (``align_corners=False``), as the CUDA kernel.
    """
    shapes = _shape_list(spatial_shapes)
    b, _, heads, dim = value.shape
    _, nq, _, levels, points, _ = sampling_locations.shape
    if len(shapes) != levels:
        raise ValueError(f'{len(shapes)} spatial shapes for {levels} levels')
    per_level = value.split([h * w for h, w in shapes], dim=1)
    grids = sampling_locations * 2 - 1  # grid_sample's [-1, 1] convention
    # (B, Nq, heads, L, P) -> (B * heads, 1, Nq, L, P)
    weights = attention_weights.permute(0, 2, 1, 3, 4).reshape(b * heads, 1, nq, levels, points)
    out = None
    for lvl, (h, w) in enumerate(shapes):
        # (B, HW, heads, dim) -> (B * heads, dim, H, W)
        v = per_level[lvl].permute(0, 2, 3, 1).reshape(b * heads, dim, h, w)
        # (B, Nq, heads, P, 2) -> (B * heads, Nq, P, 2)
        g = grids[:, :, :, lvl].permute(0, 2, 1, 3, 4).reshape(b * heads, nq, points, 2)
        sampled = F.grid_sample(v, g, mode='bilinear', padding_mode='zeros', align_corners=False)
        term = (sampled * weights[..., lvl, :]).sum(-1)  # (B * heads, dim, Nq)
        out = term if out is None else out + term
    return out.view(b, heads * dim, nq).transpose(1, 2).contiguous()


@lru_cache(maxsize=None)
def _mmcv_kernel_available(device_type: str) -> bool:
    """True when mmcv's compiled MSDeformAttn kernel runs on this device type."""
    try:
        from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
    except Exception:
        return False
    try:
        device = torch.device(device_type)
        value = torch.zeros(1, 1, 1, 2, device=device)
        shapes = torch.tensor([[1, 1]], dtype=torch.long, device=device)
        start = torch.zeros(1, dtype=torch.long, device=device)
        loc = torch.full((1, 1, 1, 1, 1, 2), 0.5, device=device)
        wts = torch.ones(1, 1, 1, 1, 1, device=device)
        MultiScaleDeformableAttnFunction.apply(value, shapes, start, loc, wts, 64)
        return True
    except Exception:  # e.g. "implementation for device cpu not found"
        return False


def mmcv_kernel_available(device: Union[str, torch.device]) -> bool:
    """Whether mmcv's compiled kernel is installed and runs on ``device``."""
    return _mmcv_kernel_available(torch.device(device).type)


def ms_deform_attn(value: Tensor, spatial_shapes: SpatialShapes, sampling_locations: Tensor,
                   attention_weights: Tensor, impl: str = 'auto', im2col_step: int = 64) -> Tensor:
    """Dispatch to mmcv's compiled kernel (``'mmcv'``) or PyTorch (``'pytorch'``: the
    weighted gather; ``'grid_sample'``: one ``grid_sample`` per level).

    ``'auto'`` takes the compiled kernel when mmcv has one for the device
    (CUDA), else the PyTorch path. Half-precision inputs run the kernel in
    float32 (mmcv's kernel has no fp16 backward on every build).
    """
    if impl not in IMPLEMENTATIONS:
        raise ConfigError(f"ms_deform_attn impl must be one of {IMPLEMENTATIONS}, got '{impl}'")
    if impl == 'grid_sample':
        return ms_deform_attn_grid_sample(value, spatial_shapes, sampling_locations,
                                          attention_weights)
    use_mmcv = impl == 'mmcv' or (impl == 'auto' and mmcv_kernel_available(value.device))
    if not use_mmcv:
        return ms_deform_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights)
    if not mmcv_kernel_available(value.device):
        raise ConfigError(f"mmcv's compiled MSDeformAttn kernel is not available on "
                          f"{value.device.type}; use impl='pytorch' (or 'auto')")
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
    shapes = spatial_shapes if isinstance(spatial_shapes, Tensor) else torch.tensor(
        _shape_list(spatial_shapes), dtype=torch.long, device=value.device)
    shapes = shapes.to(device=value.device, dtype=torch.long)
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    dtype = value.dtype
    out = MultiScaleDeformableAttnFunction.apply(
        value.float(), shapes, start, sampling_locations.float(), attention_weights.float(),
        im2col_step)
    return out.to(dtype)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable self-attention over flattened multi-level maps.

    Args:
        embed_dims: channels of queries and values.
        num_heads: attention heads (``embed_dims`` must divide by it).
        num_levels: feature levels attended to.
        num_points: sampling points per head and level.
        dropout: dropout on the output before the residual.
        impl: ``'auto'``, ``'pytorch'``, ``'grid_sample'`` or ``'mmcv'`` (see
            :func:`ms_deform_attn`).

    ``forward`` adds the residual (like mmcv's module), so a layer is
    ``norm(x + attn(x))``.
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_levels: int = 3,
                 num_points: int = 4, dropout: float = 0.0, impl: str = 'auto'):
        super().__init__()
        if embed_dims % num_heads:
            raise ConfigError(f'embed_dims ({embed_dims}) must be divisible by num_heads '
                              f'({num_heads})')
        if impl not in IMPLEMENTATIONS:
            raise ConfigError(f"impl must be one of {IMPLEMENTATIONS}, got '{impl}'")
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.impl = impl
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's init: offsets fan out in ``num_heads`` directions."""
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.num_heads, 1, 1, 2)
        grid = grid.repeat(1, self.num_levels, self.num_points, 1)
        grid = grid * torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: Tensor, reference_points: Tensor, value: Tensor,
                spatial_shapes: SpatialShapes, query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            query: ``(B, Nq, C)``.
            reference_points: ``(B, Nq, levels, 2)``, ``(x, y)`` in ``[0, 1]``.
            value: ``(B, sum(H_l * W_l), C)``.
            spatial_shapes: ``(H_l, W_l)`` per level.
            query_pos: added to the query (not to the residual).
            key_padding_mask: ``(B, Nv)``, True where the value is padding.

        Returns:
            ``(B, Nq, C)``: ``query + dropout(attn)``.
        """
        shapes = _shape_list(spatial_shapes)
        identity = query
        if query_pos is not None:
            query = query + query_pos
        b, nq, _ = query.shape
        nv = value.shape[1]
        if sum(h * w for h, w in shapes) != nv:
            raise ValueError(f'value has {nv} positions but spatial shapes {shapes} give '
                             f'{sum(h * w for h, w in shapes)}')
        v = self.value_proj(value)
        if key_padding_mask is not None:
            v = v.masked_fill(key_padding_mask[..., None], 0.0)
        v = v.view(b, nv, self.num_heads, -1)
        offsets = self.sampling_offsets(query).view(
            b, nq, self.num_heads, self.num_levels, self.num_points, 2)
        weights = self.attention_weights(query).view(
            b, nq, self.num_heads, self.num_levels * self.num_points).softmax(-1)
        weights = weights.view(b, nq, self.num_heads, self.num_levels, self.num_points)
        normalizer = torch.tensor([[w, h] for h, w in shapes], dtype=offsets.dtype,
                                  device=offsets.device)
        locations = reference_points[:, :, None, :, None, :] + \
            offsets / normalizer[None, None, None, :, None, :]
        out = ms_deform_attn(v, shapes, locations, weights, impl=self.impl)
        return identity + self.dropout(self.output_proj(out))


__all__ = ['MSDeformAttn', 'ms_deform_attn', 'ms_deform_attn_pytorch', 'ms_deform_attn_grid_sample',
           'mmcv_kernel_available']
