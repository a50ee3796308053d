"""Read checkpoints written by other code bases (detectron2, MMDetection 2.x) safely.

Downloaded files are never unpickled with full pickle. A ``torch.save`` zip
file is read with ``torch.load(weights_only=True)``; a plain pickle (detectron2's
``.pkl`` model-zoo format: a dict of numpy arrays) is read by an unpickler
that accepts only the numpy array reconstruction globals and builtin
containers. Anything else stops with one line saying why and what to do.
"""
from __future__ import annotations

import codecs
import collections
import importlib
import os
import pickle
import zipfile
from typing import Any, Dict

import numpy as np
import torch

from ..errors import WeightsError

# (module, name) pairs a numpy-array pickle needs; nothing that can run code.
_NUMPY_GLOBALS = {
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
    ('collections', 'OrderedDict'),
    ('_codecs', 'encode'),  # how protocol-2 pickles store bytes; it only encodes strings
}


def _multiarray():
    try:
        return importlib.import_module('numpy._core.multiarray')  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        return importlib.import_module('numpy.core.multiarray')


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array globals and OrderedDict."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            if name == 'OrderedDict':
                return collections.OrderedDict
            if name == 'encode':
                return codecs.encode
            if name in ('_reconstruct', 'scalar'):
                return getattr(_multiarray(), name)
            return getattr(np, name)
        raise pickle.UnpicklingError(f'global {module}.{name} is not allowed')


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def read_foreign_checkpoint(path: str) -> Dict[str, Any]:
    """Load a foreign checkpoint into plain containers of tensors / arrays.

    Raises :class:`WeightsError` (one line) when the file is missing, is not a
    checkpoint, or needs full unpickling to be read.
    """
    if not os.path.isfile(path):
        raise WeightsError(f'checkpoint not found: {path}')
    if zipfile.is_zipfile(path):
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError as exc:
            raise WeightsError(
                f'{path} holds pickled Python objects besides tensors ({_first_line(exc)}); '
                'they are not unpickled from downloaded files. If you trust the file, re-save '
                'just its weights: torch.save({"model": torch.load(f, weights_only=False)'
                '["model"]}, "weights.pth"), then convert that') from exc
        except Exception as exc:
            raise WeightsError(f'cannot read checkpoint {path}: {_first_line(exc)} '
                               '(truncated download, or not a checkpoint?)') from exc
    else:
        with open(path, 'rb') as f:
            head = f.read(2)
            f.seek(0)
            if not head or head[0] != 0x80:  # every pickle of protocol >= 2 starts with PROTO
                raise WeightsError(f'{path} is neither a torch checkpoint nor a pickle '
                                   '(wrong file, or a truncated download?)')
            try:
                obj = _ArrayOnlyUnpickler(f, encoding='latin1').load()
            except pickle.UnpicklingError as exc:
                raise WeightsError(
                    f'{path} is a pickle that needs more than numpy arrays to load '
                    f'({_first_line(exc)}); it is not unpickled. If you trust it, load it '
                    'yourself and torch.save its weights dict, then convert that') from exc
            except Exception as exc:
                raise WeightsError(f'cannot read checkpoint {path}: {_first_line(exc)} '
                                   '(truncated download?)') from exc
    if not isinstance(obj, dict):
        raise WeightsError(f'{path} holds a {type(obj).__name__}, not a checkpoint dict')
    return obj


def foreign_state_dict(checkpoint: Dict[str, Any], path: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """The weights of a detectron2 (``model``) or MMDetection (``state_dict``) checkpoint
    as tensors (numpy arrays converted)."""
    for key in ('model', 'state_dict'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            weights = checkpoint[key]
            break
    else:
        weights = checkpoint
    out = {}
    for name, value in weights.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f'{path}: entry {name!r} is a {type(value).__name__}, not a '
                               'tensor; is this a model checkpoint?')
        out[name] = value
    return out


__all__ = ['read_foreign_checkpoint', 'foreign_state_dict']
