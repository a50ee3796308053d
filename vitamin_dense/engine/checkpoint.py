"""Runner checkpoints that load under ``torch.load(weights_only=True)``.

torch >= 2.6 refuses to unpickle anything but tensors and plain containers by
default. MMEngine's runner checkpoints hold its ``HistoryBuffer`` (pickled with
bound methods through ``getattr``, which must never be allow-listed) and numpy
arrays and scalars. Our runner stores those in plain form (:func:`to_plain`)
and restores them after loading (:func:`from_plain`), so every checkpoint we
write, and every file we read, goes through the safe loader.
"""
from __future__ import annotations

import os
import pickle
import re
from typing import Any, Optional

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


def load_runner_checkpoint(path: str, map_location: Any = 'cpu') -> dict:
    """Load a checkpoint written by our runner, weights-only, with clear errors."""
    if not os.path.isfile(path):
        raise WeightsError(f'checkpoint not found: {path}')
    kind = describe_non_checkpoint(path)
    if kind is not None:
        raise WeightsError(f'{path} is not a PyTorch checkpoint ({kind}); pass the .pth file '
                           'tools/train.py wrote (work_dirs/<config>/iter_N.pth)')
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f'{path} holds pickled Python objects (not written by vitamin-dense?); they are not '
            'loaded from files. Re-save its state_dict alone, or train with our runner') from exc
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f'cannot read checkpoint {path}: {first} (truncated or not a '
                           'checkpoint?)') from exc
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
