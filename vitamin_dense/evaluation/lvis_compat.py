"""Run the ``lvis`` package's evaluator under numpy 2.

``lvis`` (0.5.3, the release on the registry) calls ``np.float`` in
``LVISEval.accumulate``; numpy 1.24 removed that alias, so the evaluation
crashes with ``AttributeError: module 'numpy' has no attribute 'float'``.

:func:`lvis_numpy_compat` fixes this without touching site-packages or the
global ``numpy`` module: for the duration of the ``with`` block, the ``np``
name *inside ``lvis.eval``* points at a proxy that forwards every attribute
to numpy and adds ``float`` (the builtin ``float``, which is what ``np.float``
aliased). Other code, including code running at the same time, sees numpy
unchanged; nested or concurrent blocks are reference-counted.
"""
from __future__ import annotations

import builtins
import contextlib
import threading
import types
from typing import Iterator

import numpy as np


class _NumpyWithFloat(types.ModuleType):
    """numpy, plus the ``float`` alias removed in numpy 1.24."""

    float = builtins.float

    def __init__(self) -> None:
        super().__init__('numpy')

    def __getattr__(self, name: str):
        return getattr(np, name)


_PROXY = _NumpyWithFloat()
_LOCK = threading.Lock()
_DEPTH = 0
_ORIGINAL = None


def needs_numpy_float_shim() -> bool:
    """True when numpy lacks ``np.float`` (numpy >= 1.24)."""
    try:
        np.float  # noqa: B018  (attribute access is the test)
    except AttributeError:
        return True
    return False


@contextlib.contextmanager
def lvis_numpy_compat() -> Iterator[None]:
    """Context in which ``lvis.eval.LVISEval`` runs under numpy 2 (see the module doc)."""
    global _DEPTH, _ORIGINAL
    import lvis.eval as lvis_eval_module
    if not needs_numpy_float_shim():
        yield
        return
    with _LOCK:
        if _DEPTH == 0:
            _ORIGINAL = lvis_eval_module.np
            lvis_eval_module.np = _PROXY
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                lvis_eval_module.np = _ORIGINAL
                _ORIGINAL = None
