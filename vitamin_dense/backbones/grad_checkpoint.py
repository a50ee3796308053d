"""Gradient checkpointing of the sliding-window backbone when it is fine-tuned.

With gradients on, every window's activations would stay alive until the
backward pass, so chunking the windows bounds nothing. Two places to
checkpoint (``torch.utils.checkpoint``, non-reentrant, RNG state preserved so
drop-path recomputes identically):

* ``'block'``: each unit of the trunk (the stem, every MBConv block, every ViT
  block) keeps only its input; the backward pass recomputes one unit at a
  time. Memory grows with the number of windows (their block inputs), by a
  small amount per window.
* ``'chunk'``: each chunk of windows keeps only its input windows; the
  backward pass recomputes one chunk at a time, so activation memory is
  bounded by the chunk size whatever the image size. Chunks are then sized
  with the per-window cost of a whole forward graph (much more than the
  no-gradient peak the memory budget otherwise uses).
* ``'both'``: chunks, and blocks inside the recomputed chunk (least memory,
  a third forward pass).

``tools/benchmark.py finetune`` measures them (README, "Benchmarks").
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError

MODES = ('block', 'chunk', 'both')
# What ``grad_checkpointing=True`` means (the measured choice; see the module doc).
DEFAULT_MODE = 'chunk'


def resolve_mode(value: Union[bool, str, None]) -> Optional[str]:
    """``True`` -> :data:`DEFAULT_MODE`; ``False`` / ``None`` / ``'none'`` -> None."""
    if value is True:
        return DEFAULT_MODE
    if value in (False, None, 'none'):
        return None
    if value in MODES:
        return str(value)
    raise ConfigError(f'grad_checkpointing={value!r}: use True, False or one of {list(MODES)}')


def checkpointed(fn: Callable, *args):
    """``fn(*args)`` keeping only its inputs for the backward pass."""
    return checkpoint(fn, *args, use_reentrant=False, preserve_rng_state=True)


def run_units(units: Iterable[nn.Module], x: Tensor, enabled: bool,
              taps: Sequence[int] = (), on_tap: Optional[Callable[[int, Tensor], None]] = None
              ) -> Tensor:
    """Run ``units`` in sequence, each checkpointed when ``enabled``; ``on_tap(i, out)``
    receives the output of every unit whose index is in ``taps``."""
    for i, unit in enumerate(units):
        x = checkpointed(unit, x) if enabled else unit(x)
        if on_tap is not None and i in taps:
            on_tap(i, x)
    return x


def checkpointed_window_fn(window_fn: Callable[[Tensor], Dict[str, Tensor]]
                           ) -> Callable[[Tensor], Dict[str, Tensor]]:
    """A window function whose whole graph is recomputed in the backward pass."""
    def run(x: Tensor) -> Dict[str, Tensor]:
        return checkpointed(window_fn, x)
    return run


def window_graph_bytes(backbone: nn.Module) -> int:
    """Bytes of the activations one window's forward graph keeps for the backward pass
    (float32, no checkpointing), counted on the meta device: no memory, no compute.

    Counted as the growth from one window to two, so that what does not grow
    with the windows (views of the weights that linear layers save) is left out.
    ``backbone`` is a :class:`~vitamin_dense.backbones.ViTaminBackbone`; its
    current mode (train / eval) and trainable parameters are used.
    """
    from torch.func import functional_call

    class _Windows(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: Tensor) -> Dict[str, Tensor]:
            return self.inner.forward_window(x)

    params = {f'inner.{n}': nn.Parameter(p.detach().to('meta'), requires_grad=p.requires_grad)
              for n, p in backbone.named_parameters()}
    params.update({f'inner.{n}': b.to('meta') for n, b in backbone.named_buffers()})
    wrapper = _Windows(backbone)

    def saved_bytes(n: int) -> int:
        saved: Dict[int, int] = {}

        def pack(t: Tensor) -> Tensor:
            saved[id(t)] = t.numel() * t.element_size()
            return t
        w = backbone.window_size
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            functional_call(wrapper, params, (torch.empty(n, 3, w, w, device='meta'),))
        return sum(saved.values())

    mode, backbone.grad_checkpointing = backbone.grad_checkpointing, None
    try:
        return max(1, saved_bytes(2) - saved_bytes(1))
    finally:
        backbone.grad_checkpointing = mode


__all__ = ['MODES', 'DEFAULT_MODE', 'resolve_mode', 'checkpointed', 'run_units',
           'checkpointed_window_fn', 'window_graph_bytes']
