"""Where the time goes: wall time of named stages of one call, nested.

:class:`StageTimer` wraps callables in place (a module's ``forward``, a
class's method, a module-level function looked up at call time) so that each
call adds its wall time to a named stage; stages may nest (a stage's time
includes its children's). On CUDA every timed call is bracketed by
synchronisations, so the figures are the device's time, at the cost of
the overlap that asynchronous launches would otherwise give.

A stage whose target does not exist in the code measured (for example a
function that a newer version no longer has) is skipped, so the same
breakdown runs against an older checkout (``--against``).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ._common import now


class StageTimer:
    """Accumulates wall time per stage name while its wrappers are installed."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: Dict[str, float] = {}
        self.calls: Dict[str, int] = {}
        self.parents: Dict[str, Optional[str]] = {}
        self._undo: List[Callable[[], None]] = []
        self._active: List[str] = []

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def timed(self, name: str, fn: Callable) -> Callable:
        """``fn`` adding its wall time to stage ``name`` (outermost call only when recursive)."""
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if name in self._active:
                return fn(*args, **kwargs)
            self._active.append(name)
            self._sync()
            start = now()
            try:
                return fn(*args, **kwargs)
            finally:
                self._sync()
                self.seconds[name] = self.seconds.get(name, 0.0) + now() - start
                self.calls[name] = self.calls.get(name, 0) + 1
                self._active.pop()
        return wrapper

    def wrap(self, owner: Any, attribute: str, name: str, parent: Optional[str] = None) -> bool:
        """Time ``owner.attribute`` (an instance, class or module attribute) as ``name``."""
        if owner is None or not hasattr(owner, attribute):
            return False
        had_own = attribute in getattr(owner, '__dict__', {})
        original = owner.__dict__[attribute] if had_own else None
        setattr(owner, attribute, self.timed(name, getattr(owner, attribute)))
        self.parents.setdefault(name, parent)
        self.seconds.setdefault(name, 0.0)
        self.calls.setdefault(name, 0)
        if had_own:
            self._undo.append(lambda: setattr(owner, attribute, original))
        else:
            self._undo.append(lambda: delattr(owner, attribute))
        return True

    def restore(self) -> None:
        """Remove every wrapper (newest first)."""
        while self._undo:
            self._undo.pop()()

    def reset(self) -> None:
        """Zero the accumulated times (between repeats)."""
        for name in self.seconds:
            self.seconds[name] = 0.0
            self.calls[name] = 0

    def snapshot(self) -> List[Dict[str, Any]]:
        """``[{'stage', 'parent', 'seconds', 'calls'}]`` of the stages that ran, in wrap order."""
        return [dict(stage=n, parent=self.parents[n], seconds=s, calls=self.calls[n])
                for n, s in self.seconds.items() if self.calls[n]]


def stage_rows(stages: Sequence[Dict[str, Any]], total: float,
               labels: Optional[Dict[str, str]] = None) -> List[Dict[str, Any]]:
    """Table rows: top-level stages with their share of ``total``, children indented
    under their parent as a share of it; the unaccounted rest as 'other'."""
    labels = labels or {}
    by_parent: Dict[Optional[str], List[Dict[str, Any]]] = {}
    for s in stages:
        by_parent.setdefault(s['parent'], []).append(s)
    rows: List[Dict[str, Any]] = []

    def add(stage: Dict[str, Any], depth: int, of: float) -> None:
        name = stage['stage']
        rows.append(dict(stage='  ' * depth + labels.get(name, name), seconds=stage['seconds'],
                         share=stage['seconds'] / of if of > 0 else None, depth=depth,
                         key=name))
        for child in by_parent.get(name, []):
            add(child, depth + 1, stage['seconds'])

    for stage in by_parent.get(None, []):
        add(stage, 0, total)
    accounted = sum(s['seconds'] for s in by_parent.get(None, []))
    rows.append(dict(stage='other', seconds=max(0.0, total - accounted),
                     share=max(0.0, total - accounted) / total if total > 0 else None,
                     depth=0, key='other'))
    rows.append(dict(stage='total', seconds=total, share=1.0, depth=0, key='total'))
    return rows


def best_run(runs: Sequence[Tuple[float, List[Dict[str, Any]]]]
             ) -> Tuple[float, List[Dict[str, Any]]]:
    """The run with the smallest total: all its stage figures come from that one run."""
    return min(runs, key=lambda r: r[0])


__all__ = ['StageTimer', 'stage_rows', 'best_run']
