"""Build an open_clip ViTamin CLIP model and load its weights safely.

Weights may come from an open_clip pretrained tag (``'datacomp1b'``, fetched
from the Hugging Face hub), a hub id (``'hf-hub:org/repo'`` or
``'hf-hub:org/repo/file.safetensors'``), or a local file (``.safetensors``, or
``.pt`` / ``.bin`` / ``.pth`` read with ``torch.load(weights_only=True)``).
Untrusted files are never unpickled. Every failure becomes a
:class:`~vitamin_dense.errors.WeightsError` with a one-line message.

State dicts are accepted in the layouts ``open_clip.load_checkpoint`` converts
for ViTamin (see :func:`convert_clip_state_dict`), and then loaded strictly.
"""
from __future__ import annotations

import logging
import os
import pickle
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

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
    """The weights of a checkpoint: a bare state dict, or one wrapped in ``state_dict``
    (open_clip's training checkpoints, MMEngine), ``model`` or ``module``; a
    ``module.`` prefix (DDP) on every key is removed, as open_clip does."""
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


# Keys of the text tower at the top level of the old (pre-``custom_text``) CLIP layout.
_OLD_TEXT_KEYS = ('text_projection', 'positional_embedding', 'token_embedding', 'transformer',
                  'ln_final')


def _is_timm_layout(state: Dict[str, torch.Tensor]) -> bool:
    """A bare timm ViTamin (``timm.create_model('vitamin_*')``): trunk keys at the top."""
    return 'pos_embed' in state and any(k.startswith('patch_embed.') for k in state)


def _from_timm_layout(state: Dict[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
    """timm's ViTamin keys -> open_clip's image tower (``trunk.*``, ``head.proj``).

    timm keeps the CLIP projection as its classifier ``head`` (a Linear whose
    bias timm's own checkpoint filter sets to zero); open_clip's ``head.proj``
    has no bias, so a non-zero one cannot be represented.
    """
    out = OrderedDict()
    for key, value in state.items():
        if key == 'head.weight':
            out['head.proj.weight'] = value
        elif key == 'head.bias':
            if value.abs().max().item() > 0:
                raise WeightsError(f'weights {source}: the timm head has a non-zero bias, which '
                                   "open_clip's ViTamin projection has no place for; is this a "
                                   'ViTamin CLIP image tower?')
        else:
            out['trunk.' + key] = value
    return out


def convert_clip_state_dict(state: Dict[str, torch.Tensor], model: nn.Module, source: str
                            ) -> Tuple[nn.Module, Dict[str, torch.Tensor], List[str]]:
    """Bring a ViTamin state dict into ``model``'s layout, as ``open_clip.load_checkpoint`` does.

    Handles the layouts open_clip (and timm, for the image tower) convert:

    * the old CLIP layout with the text tower at the top level
      (``positional_embedding``, ``transformer.*``, ...) -> ``text.*``
      (``open_clip.model.convert_to_custom_text_state_dict``; ViTamin is a
      ``CustomTextCLIP``);
    * a 0-d / 1-d ``logit_scale`` of the other shape;
    * a text ``positional_embedding`` of another context length, resized
      linearly (``open_clip.model.resize_text_pos_embed``);
    * an image-tower-only state dict (``trunk.*``, ``head.proj.weight``) or a
      timm one (``pos_embed``, ``patch_embed.*``, ``blocks.*``, ``head.weight``);
    * a trunk ``pos_embed`` of another grid, resampled bicubically
      (``timm.layers.resample_abs_pos_embed``, as timm's checkpoint filter).

    Not applicable to ViTamin and not handled: the OpenAI / big_vision /
    MobileCLIP conversions, ``visual.positional_embedding`` (open_clip's own
    ViT only) and Hugging Face text towers' ``position_ids``.

    Returns the module to load into (``model`` or ``model.visual``), the
    converted state dict (a new dict; ``state`` is not modified) and
    human-readable notes of the conversions applied.
    """
    from open_clip.model import convert_to_custom_text_state_dict, resize_text_pos_embed
    notes: List[str] = []
    state = OrderedDict(state)
    target: nn.Module = model
    if _is_timm_layout(state):
        state = _from_timm_layout(state, source)
        notes.append('timm layout -> open_clip image tower')
    if any(k.startswith('trunk.') for k in state):
        target = model.visual  # image tower only: the text tower keeps its own weights
    elif 'positional_embedding' in state and not hasattr(model, 'positional_embedding'):
        converted = convert_to_custom_text_state_dict(state)
        if converted is not state:
            state = OrderedDict(converted)
            notes.append('text tower moved under text.')
    if target is model:
        scale = state.get('logit_scale')
        if scale is not None and scale.ndim != model.logit_scale.ndim:
            state['logit_scale'] = scale.reshape(model.logit_scale.shape)
        text_pos = state.get('text.positional_embedding')
        own_pos = getattr(getattr(model, 'text', None), 'positional_embedding', None)
        if text_pos is not None and own_pos is not None and text_pos.ndim == 2 and \
                text_pos.shape[1] == own_pos.shape[1] and text_pos.shape[0] != own_pos.shape[0]:
            resize_text_pos_embed(state, model)
            notes.append(f'text positional_embedding resized {text_pos.shape[0]} -> '
                         f'{own_pos.shape[0]}')
    prefix = 'trunk.' if target is not model else 'visual.trunk.'
    pos = state.get(prefix + 'pos_embed')
    trunk = model.visual.trunk
    if pos is not None and trunk.pos_embed is not None and pos.ndim == 3 and \
            pos.shape[-1] == trunk.pos_embed.shape[-1] and pos.shape[1] != trunk.pos_embed.shape[1]:
        side = int(round(pos.shape[1] ** 0.5))
        if side * side == pos.shape[1]:
            from timm.layers import resample_abs_pos_embed
            grid = list(trunk.patch_embed.grid_size)
            state[prefix + 'pos_embed'] = resample_abs_pos_embed(
                pos, new_size=grid, old_size=[side, side], num_prefix_tokens=0,
                interpolation='bicubic', antialias=True)
            notes.append(f'pos_embed resampled {side}x{side} -> {grid[0]}x{grid[1]} tokens')
    return target, state, notes


def load_weights_into(model: nn.Module, state: Dict[str, torch.Tensor], model_name: str,
                      source: str, require_text: bool = False) -> None:
    """Load a full-CLIP or image-tower-only state dict strictly, explaining mismatches.

    The state dict may be in any layout :func:`convert_clip_state_dict`
    handles. ``require_text``: the caller needs the text tower, so
    image-tower-only weights are an error rather than a random text tower.
    """
    target, state, notes = convert_clip_state_dict(state, model, source)
    if require_text and target is not model:
        raise WeightsError(f'weights {source} hold only the image tower; the text encoder needs '
                           f'a full CLIP checkpoint of {model_name} (image and text towers)')
    result_missing, result_unexpected, bad_shapes = _compare(target, state)
    if result_missing or result_unexpected or bad_shapes:
        examples = (bad_shapes + result_missing + result_unexpected)[:2]
        raise WeightsError(
            f"weights {source} do not fit {model_name}: {len(result_missing)} missing, "
            f"{len(result_unexpected)} unexpected, {len(bad_shapes)} mis-shaped keys "
            f"(e.g. {', '.join(examples)}); check --model matches the weights")
    for note in notes:
        (logger.warning if 'resampled' in note or 'resized' in note else logger.info)(
            'weights %s: %s', source, note)
    target.load_state_dict(state, strict=True)


def _compare(module: nn.Module, state: Dict[str, torch.Tensor]):
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
           if k in state and tuple(state[k].shape) != tuple(v.shape)]
    return missing, unexpected, bad


def create_vitamin_clip(model_name: str, weights: Optional[str] = None,
                        cache_dir: Optional[str] = None,
                        require_text: bool = False) -> Tuple[nn.Module, VariantInfo]:
    """Build the open_clip CLIP model of a ViTamin variant and load weights.

    Returns the model (fp32, on CPU, in eval mode) and the variant's info.
    ``weights=None`` (or ``'random'``) gives a randomly initialised model.
    ``require_text``: refuse image-tower-only weights (text encoders).
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
        load_weights_into(model, read_state_dict(path), model_name, source=path,
                          require_text=require_text)
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
