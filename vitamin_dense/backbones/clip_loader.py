"""Build an open_clip ViTamin CLIP model and load its weights safely.

Weights may come from an open_clip pretrained tag (``'datacomp1b'``, fetched
from the Hugging Face hub), a hub id (``'hf-hub:org/repo'`` or
``'hf-hub:org/repo/file.safetensors'``), or a local file (``.safetensors``, or
``.pt`` / ``.bin`` / ``.pth`` read with ``torch.load(weights_only=True)``).
Untrusted files are never unpickled. Every failure becomes a
:class:`~vitamin_dense.errors.WeightsError` with a one-line message.
"""
from __future__ import annotations

import logging
import os
import pickle
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import open_clip
import torch
from torch import nn

from ..errors import WeightsError
from .variants import VariantInfo, get_variant

logger = logging.getLogger(__name__)

RANDOM_INIT = (None, '', 'none', 'random')
# How the same fix reads for tools/train.py and tools/test.py users.
CONFIG_WAY_OUT = ('with tools/train.py or test.py: --cfg-options model.backbone.weights=FILE, '
                  'and model.text_encoder.weights=FILE where the config sets it')
_HF_DEFAULT_FILES = ('open_clip_model.safetensors', 'open_clip_pytorch_model.bin',
                     'model.safetensors', 'pytorch_model.bin')
# The last file read, so that a backbone and a text encoder built from the
# same weights read a multi-GB checkpoint once.
_STATE_CACHE: Dict[Tuple[str, float, int], Dict[str, torch.Tensor]] = {}


def describe_weights(weights: Optional[str]) -> str:
    """A short human description of a weights argument, for logs and errors."""
    return 'random init' if weights in RANDOM_INIT else str(weights)


def resolve_weights_file(model_name: str, weights: str, cache_dir: Optional[str] = None) -> str:
    """Turn a tag, hub id or path into a local file path (downloading if needed)."""
    variant = get_variant(model_name)
    if weights in variant.pretrained_tags:
        cfg = open_clip.get_pretrained_cfg(model_name, weights)
        parts = cfg.get('hf_hub', '').strip('/').split('/')
        repo, filename = '/'.join(parts[:2]), ('/'.join(parts[2:]) or None)
        return _download_from_hub(repo, filename, cache_dir,
                                  what=f"pretrained weights '{weights}' for {model_name}")
    if weights.startswith('hf-hub:'):
        parts = weights[len('hf-hub:'):].strip('/').split('/')
        if len(parts) < 2:
            raise WeightsError(f"bad hub id '{weights}': use 'hf-hub:org/repo' or "
                               "'hf-hub:org/repo/file.safetensors'")
        repo, filename = '/'.join(parts[:2]), ('/'.join(parts[2:]) or None)
        return _download_from_hub(repo, filename, cache_dir, what=f"weights '{weights}'")
    path = os.path.expanduser(weights)
    if os.path.isfile(path):
        return path
    tags = ', '.join(variant.pretrained_tags) or 'none'
    raise WeightsError(
        f"weights '{weights}' for {model_name} are neither a file, a 'hf-hub:org/repo' id nor "
        f"a pretrained tag (tags for this model: {tags}); pass --weights /path/to/file "
        f"({CONFIG_WAY_OUT})")


def hub_reachable() -> bool:
    """Whether the Hugging Face endpoint's host name resolves (a fast offline check:
    without it, huggingface_hub retries a dead network for half a minute)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname
    if not host:
        return True  # an unusual endpoint: let huggingface_hub decide
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _download_from_hub(repo: str, filename: Optional[str], cache_dir: Optional[str],
                       what: str) -> str:
    """A weights file from the local hub cache, else downloaded (when the hub is reachable)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a core dependency
        raise WeightsError(f'{what} need huggingface_hub: pip install huggingface_hub') from exc
    candidates = (filename,) if filename else _HF_DEFAULT_FILES
    file_hint = filename or _HF_DEFAULT_FILES[-1]
    way_out = (f'Download the file elsewhere and pass --weights '
               f'/path/to/{os.path.basename(file_hint)} ({CONFIG_WAY_OUT})')
    for name in candidates:  # the cache first: no network needed for weights already here
        try:
            return hf_hub_download(repo, name, cache_dir=cache_dir, local_files_only=True)
        except Exception:
            pass
    if not hub_reachable():
        raise WeightsError(f'could not get {what}: {repo}/{file_hint} is not in the local '
                           'Hugging Face cache and the hub cannot be reached (offline). '
                           + way_out)
    last_error: Optional[BaseException] = None
    for name in candidates:
        try:
            return hf_hub_download(repo, name, cache_dir=cache_dir)
        except Exception as exc:  # missing file, auth, network ... all end the same way
            last_error = exc
    reason = type(last_error).__name__ if last_error is not None else 'unknown error'
    raise WeightsError(
        f'could not get {what} from the Hugging Face hub ({repo}/{file_hint}: {reason}). '
        + way_out)


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read a state dict without unpickling arbitrary objects."""
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_mtime, stat.st_size)
    if key in _STATE_CACHE:
        return _STATE_CACHE[key]
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            state = load_file(path, device='cpu')
        else:
            state = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path} holds pickled Python objects, which are not loaded from untrusted files; "
            "re-save it as a plain state_dict or .safetensors") from exc
    except Exception as exc:
        raise WeightsError(f"cannot read weights file {path} ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:120] if str(exc) else 'corrupt?'})") from exc
    state = _unwrap_state_dict(state, path)
    _STATE_CACHE.clear()
    _STATE_CACHE[key] = state
    return state


def _unwrap_state_dict(obj, path: str) -> Dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ('state_dict', 'model', 'module'):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or \
            not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f'{path} is not a state dict of tensors')
    if all(k.startswith('module.') for k in obj):
        obj = OrderedDict((k[len('module.'):], v) for k, v in obj.items())
    return obj


def load_weights_into(model: nn.Module, state: Dict[str, torch.Tensor], model_name: str,
                      source: str) -> None:
    """Load a full-CLIP or image-tower-only state dict strictly, explaining mismatches."""
    # A full CLIP checkpoint has 'visual.*' and 'text.*' keys; an image-tower-only
    # one (what timm-style exports hold) starts at 'trunk.*' / 'head.*'.
    target = model.visual if any(k.startswith('trunk.') for k in state) else model
    result_missing, result_unexpected, bad_shapes = _compare(target, state)
    if result_missing or result_unexpected or bad_shapes:
        examples = (bad_shapes + result_missing + result_unexpected)[:2]
        raise WeightsError(
            f"weights {source} do not fit {model_name}: {len(result_missing)} missing, "
            f"{len(result_unexpected)} unexpected, {len(bad_shapes)} mis-shaped keys "
            f"(e.g. {', '.join(examples)}); check --model matches the weights")
    target.load_state_dict(state, strict=True)


def _compare(module: nn.Module, state: Dict[str, torch.Tensor]):
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
           if k in state and tuple(state[k].shape) != tuple(v.shape)]
    return missing, unexpected, bad


def create_vitamin_clip(model_name: str, weights: Optional[str] = None,
                        cache_dir: Optional[str] = None) -> Tuple[nn.Module, VariantInfo]:
    """Build the open_clip CLIP model of a ViTamin variant and load weights.

    Returns the model (fp32, on CPU, in eval mode) and the variant's info.
    ``weights=None`` (or ``'random'``) gives a randomly initialised model.
    """
    variant = get_variant(model_name)
    kwargs = {}
    if variant.force_image_size:
        kwargs['force_image_size'] = variant.force_image_size
    if torch.empty(0).is_meta:  # under `with torch.device('meta')`: shapes only
        kwargs['device'] = 'meta'
    path = None
    if weights not in RANDOM_INIT:
        path = resolve_weights_file(model_name, weights, cache_dir)
    with _quiet_open_clip():
        model = open_clip.create_model(model_name, pretrained=None, **kwargs)
    if path is not None:
        load_weights_into(model, read_state_dict(path), model_name, source=path)
        logger.info('loaded %s weights from %s', model_name, path)
    else:
        logger.info('%s: random initialisation (no weights)', model_name)
    return model.eval(), variant


class _quiet_open_clip:
    """open_clip warns about random init on every build; we log our own line."""

    def __enter__(self):
        self._logger = logging.getLogger()
        self._level = self._logger.level
        self._logger.setLevel(max(self._level, logging.ERROR))

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)
