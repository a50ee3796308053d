"""Reading and writing runner checkpoints without unpickling arbitrary objects.

torch >= 2.6 refuses to unpickle anything but tensors and plain containers by
default. A checkpoint of MMEngine's runner (what mmdet's and mmseg's
``tools/train.py`` write) also holds its ``HistoryBuffer`` objects (whose
statistics methods are pickled through ``getattr``) and numpy arrays and
scalars. So:

* Our runner writes those in plain form (:func:`to_plain`), so its
  checkpoints load with plain ``torch.load(weights_only=True)`` (also in a
  stock runner, which then skips the log history) and restores them after
  loading (:func:`from_plain`).
* Every checkpoint is read by torch's weights-only unpickler allowed exactly
  what MMEngine's runner writes (:func:`runner_safe_globals`): the
  ``HistoryBuffer`` class, ``getattr`` only for its four built-in statistics,
  numpy arrays, dtypes and scalars. None of these runs code from the file, so
  checkpoints of any MMEngine runner load whatever their origin.
* Anything else needs full unpickling, which only a *trusted* file gets: one
  inside the work_dir of the run that loads it (its own earlier output, e.g.
  ``--resume``). Files elsewhere (``load_from`` of a downloaded or copied
  file, URLs, hub downloads) stay on the safe path and are refused with one line.
"""
from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np
import torch

from ..errors import WeightsError
from ..utils.file_kind import describe_non_checkpoint

_BUFFER_TAG = '__vitamin_dense_history_buffer__'


def to_plain(obj: Any) -> Any:
    """Replace HistoryBuffers and numpy values by plain, weights-only-safe types."""
    from mmengine.logging import HistoryBuffer
    if isinstance(obj, HistoryBuffer):
        log, count = obj.data
        return {_BUFFER_TAG: True, 'log_history': torch.from_numpy(np.asarray(log, np.float64)),
                'count_history': torch.from_numpy(np.asarray(count, np.float64)),
                'max_length': int(obj.max_length)}
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return type(obj)((k, to_plain(v)) for k, v in obj.items()) if type(obj) is not dict \
            else {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, '_fields'):
        return tuple(to_plain(v) for v in obj)
    return obj


def from_plain(obj: Any) -> Any:
    """Inverse of :func:`to_plain` for the HistoryBuffers of the message hub."""
    from mmengine.logging import HistoryBuffer
    if isinstance(obj, dict):
        if obj.get(_BUFFER_TAG):
            return HistoryBuffer(obj['log_history'].numpy().tolist(),
                                 obj['count_history'].numpy().tolist(), obj['max_length'])
        return {k: from_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    return obj


_HISTORY_STATISTICS = ('min', 'max', 'current', 'mean')


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _refusal(exc: BaseException) -> str:
    """The informative part of torch's weights-only refusal (it starts with a paragraph
    of general advice): the global or type it refused."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if 'WeightsUnpickler error' in line:
            detail = line.split('WeightsUnpickler error:', 1)[-1].strip()
            if not detail and i + 1 < len(lines):
                detail = lines[i + 1]
            match = re.search(r'GLOBAL (\S+) was not an allowed global', detail)
            return f'needs {match.group(1)}' if match else detail[:160]
    return _first_line(exc)


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as the unpickler may call it: HistoryBuffer's built-in statistics only."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'getattr({getattr(obj, "__name__", type(obj).__name__)}, '
                                 f'{name!r}) is not allowed')


def runner_safe_globals() -> List[Tuple[Any, str]]:
    """``(object, pickled name)`` pairs for ``torch.serialization.safe_globals``: what an
    MMEngine runner checkpoint holds besides tensors, none of which runs code."""
    import importlib
    from mmengine.logging import HistoryBuffer
    try:
        multiarray = importlib.import_module('numpy._core.multiarray')  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        multiarray = importlib.import_module('numpy.core.multiarray')
    pairs: List[Tuple[Any, str]] = [
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (_history_buffer_getattr, 'builtins.getattr'),
        (np.ndarray, 'numpy.ndarray'), (np.dtype, 'numpy.dtype')]
    # numpy >= 1.25 builds each dtype as an instance of its own class (Float64DType...)
    for name in getattr(np, 'dtypes', None) and dir(np.dtypes) or ():
        value = getattr(np.dtypes, name)
        if isinstance(value, type) and issubclass(value, np.dtype):
            pairs.append((value, f'numpy.dtypes.{name}'))
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):  # numpy 1.x / 2.x files
        pairs += [(multiarray._reconstruct, f'{module}._reconstruct'),
                  (multiarray.scalar, f'{module}.scalar')]
    return pairs


@contextlib.contextmanager
def runner_safe_loading() -> Iterator[None]:
    """Within this context, ``torch.load(weights_only=True)`` (also inside MMEngine's
    URL and backend loaders) reads MMEngine runner checkpoints."""
    with torch.serialization.safe_globals(runner_safe_globals()):
        yield


def is_trusted_checkpoint(path: str, work_dir: Optional[str]) -> bool:
    """Whether ``path`` is a local file inside ``work_dir`` (the loading run's own output)."""
    if not work_dir or '://' in str(path) or not os.path.isfile(path):
        return False
    root = os.path.realpath(work_dir)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def load_runner_checkpoint(path: str, map_location: Any = 'cpu', trusted: bool = False) -> dict:
    """Load a runner checkpoint (ours or any MMEngine runner's) with clear errors.

    Read by the weights-only unpickler with :func:`runner_safe_globals`;
    with ``trusted`` (see :func:`is_trusted_checkpoint`), a checkpoint that
    needs more is fully unpickled, with a warning.
    """
    if not os.path.isfile(path):
        raise WeightsError(f'checkpoint not found: {path}')
    kind = describe_non_checkpoint(path)
    if kind is not None:
        raise WeightsError(f'{path} is not a PyTorch checkpoint ({kind}); pass the .pth file '
                           'tools/train.py wrote (work_dirs/<config>/iter_N.pth)')
    try:
        with runner_safe_loading():
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trusted:
            raise WeightsError(
                f'{path} holds pickled Python objects besides tensors and what MMEngine runners '
                f'write ({_refusal(exc)}); they are not unpickled from files outside the '
                "run's work_dir. Resume it from the work_dir that wrote it, or re-save its "
                'state_dict alone') from exc
        logging.getLogger(__name__).warning(
            "%s needs full unpickling (%s); loading it because it is in the run's own work_dir",
            path, _refusal(exc))
        try:
            checkpoint = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as exc2:
            raise WeightsError(f'cannot read checkpoint {path}: {_first_line(exc2)}') from exc2
    except Exception as exc:
        raise WeightsError(f'cannot read checkpoint {path}: {_first_line(exc)} (truncated or '
                           'not a checkpoint?)') from exc
    if isinstance(checkpoint, dict) and 'message_hub' in checkpoint:
        checkpoint['message_hub'] = from_plain(checkpoint['message_hub'])
    return checkpoint


_CKPT_RE = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint in ``work_dir``, or None.

    Trusts MMEngine's ``last_checkpoint`` pointer when it names an existing
    file; otherwise (pointer missing, empty or stale after a kill) takes the
    highest-numbered ``iter_N.pth`` / ``epoch_N.pth``. Partial files from an
    interrupted save never carry those names (saves are atomic).
    """
    pointer = os.path.join(work_dir, 'last_checkpoint')
    if os.path.isfile(pointer):
        with open(pointer, encoding='utf-8') as f:
            last = f.read().strip()
        if last and os.path.isfile(last):
            return last
        if last and os.path.isfile(os.path.join(work_dir, os.path.basename(last))):
            return os.path.join(work_dir, os.path.basename(last))
    if not os.path.isdir(work_dir):
        return None
    found = []
    for name in os.listdir(work_dir):
        match = _CKPT_RE.match(name)
        if match:
            found.append((int(match.group(2)), os.path.join(work_dir, name)))
    return max(found)[1] if found else None
