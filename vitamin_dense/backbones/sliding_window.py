"""Sliding-window evaluation of a fixed-resolution feature extractor.

ViTamin is pretrained at one resolution and its absolute position embedding is
never interpolated, so images of any size are covered by windows of exactly
that size. Windows start every ``stride`` pixels; the last one is clamped to
the image edge; window outputs are stitched by overlap-count averaging. The
image is zero-padded (after normalisation, i.e. with the mean colour) to a
multiple of the token size and at least one window, so every window offset is
a multiple of 16 and the token grids of all windows line up; the padding is
cropped from the outputs.

Windows are batched, in chunks of at most ``max_windows_per_chunk``, so memory
is bounded by the chunk size plus the stitched outputs, whatever the image
size. The chunk size is what runs fastest on the device within the memory
budget (:func:`chunk_size_for_budget`): on a CPU a large batch of windows is
slower than a few at a time (the activations leave the caches), on a GPU it
is what fills the device. With gradients the memory bound holds only if each
chunk's activations are recomputed in the backward pass
(``ViTaminBackbone(grad_checkpointing=True)``, see ``grad_checkpoint.py``);
otherwise every chunk's graph is kept.

Shared-convolution mode (``shared_fn``, off in every published recipe): a
function of the whole padded image (the convolutional stem) runs once, and
each window gets crops of its maps instead of its pixels. Overlapping
windows then share that work; near window borders the features differ from
per-window ones, since a window's own convolutions would see zero padding there.
It needs ``'aligned'`` placement (windows on the token grid).

Placement. ``'aligned'`` (the default) requires strides that are multiples of
16, so every window's outputs land exactly on the stitched grids.
``'published'`` reproduces the released Sliding F-ViT (ViTamin's
``vitamin_fvit``): any stride (168 for its 336 px window), windows cropped at
their exact pixel offsets, and each output of stride ``s`` added at
``floor(offset / s)``; a window at 168 px therefore lands half a token early on
the stride-16 maps (exactly on the stride-4 and stride-8 ones).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

TOKEN_SIZE = 16
PLACEMENTS = ('aligned', 'published')

WindowFn = Callable[[Union[Tensor, Dict[str, Tensor]]], Dict[str, Tensor]]
SharedFn = Callable[[Tensor], Dict[str, Tensor]]
# On a CPU, windows per chunk are capped at about this much activation memory:
# measured (tools/benchmark.py backbone --chunks), a chunk of ViTamin-Tiny
# windows (0.7 MB each) is fastest at 32-64 windows, while ViTamin-S / B
# windows (33 / 66 MB) run no faster in chunks than one by one and slower in
# large chunks.
CPU_CHUNK_BYTES = 64 * 2 ** 20
MAX_CPU_CHUNK = 64


def check_stride(stride: int, window: int, align: int = TOKEN_SIZE,
                 placement: str = 'aligned') -> int:
    """Validate a window stride: a positive multiple of the token size, at most the window
    (any positive stride with ``placement='published'``)."""
    check_placement(placement)
    if not isinstance(stride, int) or isinstance(stride, bool):
        raise ConfigError(f'window stride must be an integer, got {stride!r}')
    if placement == 'published' and stride <= 0:
        raise ConfigError(f'window stride must be positive, got {stride}')
    if placement == 'aligned' and (stride <= 0 or stride % align):
        lower = max(align, stride // align * align)
        raise ConfigError(
            f'window stride {stride} is not a positive multiple of {align} px (the token size): '
            f'windows would not share a token grid; use e.g. {lower} or {lower + align}')
    if stride > window:
        raise ConfigError(f'window stride {stride} is larger than the window ({window} px): '
                          'parts of the image would be skipped; use a stride <= the window')
    return stride


def check_placement(placement: str) -> str:
    """``'aligned'`` or ``'published'`` (see the module doc)."""
    if placement not in PLACEMENTS:
        raise ConfigError(f"unknown window placement '{placement}'; choose from "
                          f"{', '.join(PLACEMENTS)}")
    return placement


def snap_stride(stride: int, align: int = TOKEN_SIZE) -> int:
    """The multiple of the token size nearest to ``stride`` (at least one token)."""
    return max(align, int(round(stride / align)) * align)


def window_starts(length: int, window: int, stride: int) -> List[int]:
    """Start offsets covering ``[0, length)``; the last window is clamped to the edge."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride))
    starts.append(length - window)
    return starts


@dataclass(frozen=True)
class WindowGrid:
    """Where the windows of one image size go."""

    height: int
    width: int
    padded_height: int
    padded_width: int
    window: int
    stride: int
    ys: Tuple[int, ...]
    xs: Tuple[int, ...]

    @property
    def num_windows(self) -> int:
        return len(self.ys) * len(self.xs)

    @property
    def positions(self) -> List[Tuple[int, int]]:
        return [(y, x) for y in self.ys for x in self.xs]


def plan_windows(height: int, width: int, window: int, stride: int,
                 align: int = TOKEN_SIZE, placement: str = 'aligned') -> WindowGrid:
    """Plan the windows for an image of ``height`` x ``width`` pixels."""
    if height < 1 or width < 1:
        raise ConfigError(f'image of {height}x{width} px has no pixels')
    if window % align:
        raise ConfigError(f'window {window} is not a multiple of {align} px')
    check_stride(stride, window, align, placement)
    ph = max(window, math.ceil(height / align) * align)
    pw = max(window, math.ceil(width / align) * align)
    return WindowGrid(height, width, ph, pw, window, stride,
                      tuple(window_starts(ph, window, stride)),
                      tuple(window_starts(pw, window, stride)))


def sliding_window_forward(images: Tensor, window_fn: WindowFn, window: int, stride: int,
                           max_windows_per_chunk: int = 16,
                           progress: bool = False,
                           shared_fn: Optional[SharedFn] = None,
                           placement: str = 'aligned') -> Dict[str, Tensor]:
    """Run ``window_fn`` over sliding windows of ``images`` and stitch its outputs.

    Args:
        images: normalised images, ``(B, C, H, W)``, any ``H`` and ``W``.
        window_fn: maps a batch of windows ``(n, C, window, window)`` to a dict of
            feature maps ``(n, C_k, window / s_k, window / s_k)``; ``s_k`` (the
            stride of output ``k``) must divide 16.
        window: window size in pixels (the model's pretraining resolution).
        stride: distance between window starts, a multiple of 16 (any with
            ``placement='published'``).
        max_windows_per_chunk: windows run together in one call of ``window_fn``.
        progress: show a progress bar over the chunks.
        shared_fn: shared-convolution mode: maps the whole zero-padded image
            batch ``(B, C, Hp, Wp)`` once to a dict of maps whose strides
            divide 16; ``window_fn`` then receives, instead of a batch of
            windows, a dict of those maps cropped to the windows.
        placement: ``'aligned'`` or ``'published'`` (see the module doc).

    Returns:
        Dict of stitched maps ``(B, C_k, ceil(H / s_k), ceil(W / s_k))``: each
        location holds the mean over the windows that cover it.
    """
    if images.dim() != 4:
        raise ValueError(f'expected images of shape (B, C, H, W), got {tuple(images.shape)}')
    if max_windows_per_chunk < 1:
        raise ConfigError('max_windows_per_chunk must be at least 1')
    if shared_fn is not None and placement != 'aligned':
        raise ConfigError("shared-convolution mode needs placement='aligned' "
                          f'(windows on the token grid), got {placement!r}')
    b, _, h, w = images.shape
    grid = plan_windows(h, w, window, stride, placement=placement)
    jobs = [(i, y, x) for i in range(b) for (y, x) in grid.positions]
    chunks = [jobs[i:i + max_windows_per_chunk] for i in range(0, len(jobs), max_windows_per_chunk)]
    iterator = chunks
    if progress and len(chunks) > 1:
        from tqdm import tqdm
        iterator = tqdm(chunks, desc=f'windows ({len(jobs)})', unit='chunk', leave=False)

    shared: Dict[str, Tensor] = {}
    if shared_fn is not None:
        padded = _conv_layout(F.pad(images, (0, grid.padded_width - w, 0, grid.padded_height - h)))
        shared = shared_fn(padded)
        del padded
    sums: Dict[str, Tensor] = {}
    scales: Dict[str, int] = {}
    for chunk in iterator:
        if shared_fn is None:
            batch = _conv_layout(torch.stack([_window(images, i, y, x, window)
                                              for i, y, x in chunk]))
        else:
            batch = {name: _crops(m, chunk, window, grid) for name, m in shared.items()}
        outputs = window_fn(batch)
        for name, out in outputs.items():
            scale = _output_stride(name, out, window)
            if name not in sums:
                # float32 at least: windows of a bf16 / fp16 autocast stitch without rounding
                sums[name] = out.new_zeros(b, out.shape[1], grid.padded_height // scale,
                                           grid.padded_width // scale,
                                           dtype=torch.promote_types(out.dtype, torch.float32))
                scales[name] = scale
            size = window // scale
            acc = sums[name]
            for k, (i, y, x) in enumerate(chunk):
                ys, xs = y // scale, x // scale  # floor: exact unless 'published'
                acc[i, :, ys:ys + size, xs:xs + size] += out[k]
    results = {}
    for name, acc in sums.items():
        scale = scales[name]
        counts = _coverage(grid, scale, acc.device, acc.dtype)
        stitched = acc / counts
        results[name] = stitched[..., :math.ceil(h / scale), :math.ceil(w / scale)]
    return results


def _conv_layout(x: Tensor) -> Tensor:
    """Channels-last on a CPU: the convolutional stem runs 4-12% faster on it
    (ViTamin-B / S, measured), with the same results; other devices keep theirs."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == 'cpu' else x


def _window(images: Tensor, i: int, y: int, x: int, window: int) -> Tensor:
    """Window ``(y, x)`` of image ``i``, zero-padded where it passes the image edge.

    Padding per window (instead of padding a copy of the whole image) keeps
    one full-size image in memory, not two.
    """
    crop = images[i, :, y:y + window, x:x + window]
    ph, pw = window - crop.shape[-2], window - crop.shape[-1]
    return F.pad(crop, (0, pw, 0, ph)) if ph or pw else crop


def _crops(shared: Tensor, chunk: Sequence[Tuple[int, int, int]], window: int,
           grid: WindowGrid) -> Tensor:
    """The windows of ``chunk`` cut from a map of the whole padded image."""
    scale = grid.padded_height // shared.shape[-2]
    if shared.shape[-2:] != (grid.padded_height // scale, grid.padded_width // scale) or \
            TOKEN_SIZE % scale:
        raise ValueError(f'shared map of shape {tuple(shared.shape)} is not at a stride '
                         f'dividing {TOKEN_SIZE} of the {grid.padded_height}x'
                         f'{grid.padded_width} padded image')
    size = window // scale
    return torch.stack([shared[i, :, y // scale:y // scale + size, x // scale:x // scale + size]
                        for i, y, x in chunk])


def _output_stride(name: str, out: Tensor, window: int) -> int:
    if out.dim() != 4 or out.shape[-1] != out.shape[-2] or window % out.shape[-1]:
        raise ValueError(f"window output '{name}' has shape {tuple(out.shape)}: expected "
                         f'(n, C, s, s) with s dividing the window ({window})')
    scale = window // out.shape[-1]
    if TOKEN_SIZE % scale:
        raise ValueError(f"window output '{name}' has stride {scale}, which does not divide "
                         f'{TOKEN_SIZE}: windows would not align on its grid')
    return scale


def _coverage(grid: WindowGrid, scale: int, device, dtype) -> Tensor:
    """How many windows cover each location of the stitched map at ``scale``."""
    size = grid.window // scale
    rows = torch.zeros(grid.padded_height // scale, device=device, dtype=dtype)
    cols = torch.zeros(grid.padded_width // scale, device=device, dtype=dtype)
    for y in grid.ys:
        rows[y // scale:y // scale + size] += 1
    for x in grid.xs:
        cols[x // scale:x // scale + size] += 1
    return rows[:, None] * cols[None, :]


def count_windows(height: int, width: int, window: int, stride: int) -> int:
    """Number of windows for one image (for progress bars and benchmarks)."""
    return plan_windows(height, width, window, stride).num_windows


def preferred_chunk_size(per_window_bytes: int, device: Union[None, str, torch.device]
                         ) -> Optional[int]:
    """Windows per chunk that run fastest on ``device`` (None: as many as memory allows).

    CPU: about :data:`CPU_CHUNK_BYTES` of activations (a power of two, 1 to
    :data:`MAX_CPU_CHUNK` windows): batching pays only while the per-call
    overhead matters. GPU (any other device): no cap, large batches fill it.
    """
    if device is None or torch.device(device).type != 'cpu':
        return None
    fit = max(1, CPU_CHUNK_BYTES // max(per_window_bytes, 1))
    return min(MAX_CPU_CHUNK, 2 ** int(math.log2(fit)))


def chunk_size_for_budget(per_window_bytes: int, budget_mb: Optional[float],
                          default: int = 16,
                          device: Union[None, str, torch.device] = None) -> int:
    """Windows per chunk that fit a memory budget (at least 1), and, given the
    ``device``, no more than run fastest there (:func:`preferred_chunk_size`)."""
    if budget_mb is None:
        chunk = default
    elif budget_mb <= 0:
        raise ConfigError(f'memory budget must be positive, got {budget_mb} MB')
    else:
        chunk = max(1, int(budget_mb * 2 ** 20 // max(per_window_bytes, 1)))
    preferred = preferred_chunk_size(per_window_bytes, device)
    return chunk if preferred is None else min(chunk, preferred)


__all__: Sequence[str] = (
    'TOKEN_SIZE', 'WindowGrid', 'check_stride', 'snap_stride', 'window_starts', 'plan_windows',
    'sliding_window_forward', 'count_windows', 'chunk_size_for_budget', 'preferred_chunk_size',
    'PLACEMENTS', 'check_placement')
