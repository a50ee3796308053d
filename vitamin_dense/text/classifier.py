"""Class embeddings from a vocabulary with the ViTamin CLIP text tower.

Each class embedding is the L2-normalised mean, over its synonyms, of the
L2-normalised mean over templates of the normalised prompt embeddings
(:meth:`TextClassifier.encode`: one vector per class, which every head here
can use unchanged). FC-CLIP instead keeps one embedding per synonym
(:meth:`TextClassifier.encode_synonyms`, grouped per class by
:func:`group_synonyms`) and classifies with the largest logit over a class's
synonyms (as OpenSeg and ODISE); the FC-CLIP segmentor offers both
(``synonym_reduce``).

Prompts are encoded in chunks, so 1,203 LVIS names times 80 templates run in
bounded memory. Each chunk runs on a context trimmed to its longest prompt
(prompts are grouped by length first): CLIP's text tower is causal and pools
the end-of-text token, so the padding after it never changes an embedding,
and a chunk of short names costs a fraction of the 77-token context. Results are cached in memory and on disk, keyed by a
fingerprint of the text tower's weights, the templates and the names, so a
repeated CLI run with the same vocabulary costs nothing.
"""
from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Union

import open_clip
import torch
from mmengine.model import BaseModule
from torch import Tensor

from ..backbones.clip_loader import RANDOM_INIT, create_vitamin_clip, describe_weights
from ..registry import MODELS
from .templates import get_templates
from .vocabulary import VocabSpec, Vocabulary, parse_vocabulary, prompt_name

logger = logging.getLogger(__name__)


def default_cache_dir() -> str:
    root = os.environ.get('VITAMIN_DENSE_HOME', os.path.join(os.path.expanduser('~'), '.cache',
                                                             'vitamin-dense'))
    return os.path.join(root, 'text_embeddings')


@MODELS.register_module()
class TextClassifier(BaseModule):
    """Frozen CLIP text tower that turns vocabularies into class embeddings.

    Args:
        model_name: open_clip name of the ViTamin variant (must match the image tower).
        weights: same forms as :class:`~vitamin_dense.backbones.ViTaminBackbone`.
        templates: a template set name (``'vild'``, ``'imagenet'``, ``'single'``)
            or a list of strings with one ``{}``.
        chunk_size: prompts encoded together.
        disk_cache: directory for the on-disk cache; ``None`` uses
            ``$VITAMIN_DENSE_HOME/text_embeddings``; ``False`` disables it.
            Random-init models never use the disk cache.
        progress: progress bar when many chunks are encoded.
    """

    def __init__(self,
                 model_name: str = 'ViTamin-L-336',
                 weights: Optional[str] = 'datacomp1b',
                 templates: Union[str, Sequence[str]] = 'vild',
                 chunk_size: int = 256,
                 disk_cache: Union[None, bool, str] = None,
                 progress: bool = True,
                 cache_dir: Optional[str] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        clip_model, variant = create_vitamin_clip(model_name, weights, cache_dir=cache_dir,
                                                  require_text=True)
        self.model_name = model_name
        self.weights = describe_weights(weights)
        self.text = clip_model.text
        self.logit_scale = torch.nn.Parameter(clip_model.logit_scale.detach().clone(),
                                              requires_grad=False)
        del clip_model
        for p in self.text.parameters():
            p.requires_grad = False
        self.text.eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.context_length = int(getattr(self.text, 'context_length', 77))
        self.templates = get_templates(templates)
        if chunk_size < 1:
            raise ValueError('chunk_size must be at least 1')
        self.chunk_size = chunk_size
        self.progress = progress
        self._disk_cache = disk_cache
        self._memory_cache: 'OrderedDict[str, Tensor]' = OrderedDict()
        self._warned: set = set()
        self._key_on_weights(loaded=weights not in RANDOM_INIT)
        # Weights loaded later (a trained checkpoint) re-key the caches on those weights.
        self.register_load_state_dict_post_hook(
            lambda module, incompatible: module._key_on_weights(loaded=True))

    def _key_on_weights(self, loaded: bool) -> None:
        """Key the embedding caches on the current weights; random weights never reach
        the disk cache (their key would be meaningless across runs)."""
        self._fingerprint = self._weights_fingerprint()
        self._memory_cache.clear()
        if self._disk_cache is False or not loaded:
            self.disk_cache_dir = None
        else:
            self.disk_cache_dir = (self._disk_cache if isinstance(self._disk_cache, str)
                                   else default_cache_dir())

    def init_weights(self) -> None:
        """Weights are loaded at construction; never let a runner re-initialise them."""
        self._is_init = True

    def train(self, mode: bool = True):
        super().train(mode)
        self.text.eval()
        return self

    @property
    def embed_dim(self) -> int:
        return int(self.text.text_projection.shape[1]) if isinstance(
            self.text.text_projection, Tensor) else int(self.text.text_projection.out_features)

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    # ------------------------------------------------------------------ public
    def forward(self, vocabulary: VocabSpec) -> Tensor:
        return self.encode(vocabulary)

    def encode(self, vocabulary: VocabSpec) -> Tensor:
        """``(num_classes, embed_dim)`` L2-normalised class embeddings (cached)."""
        vocab = parse_vocabulary(vocabulary)
        return self._cached(self.cache_key(vocab), lambda: self._encode_uncached(vocab))

    def encode_synonyms(self, vocabulary: VocabSpec) -> Tensor:
        """``(num_synonyms, embed_dim)``: one L2-normalised embedding per synonym (cached).

        Rows follow the classes, and each class's synonyms, in order (the
        templates are averaged per synonym); :func:`group_synonyms` groups them
        by class. This is FC-CLIP's text classifier before its max over synonyms.
        """
        vocab = parse_vocabulary(vocabulary)
        key = hashlib.sha256(f'{self.cache_key(vocab)}:synonyms'.encode()).hexdigest()
        return self._cached(key, lambda: self._encode_names(
            [n for synonyms in vocab.classes for n in synonyms]))

    def _cached(self, key: str, compute) -> Tensor:
        if key in self._memory_cache:
            self._memory_cache.move_to_end(key)
            return self._memory_cache[key].to(self.device)
        emb = self._read_disk(key)
        if emb is None:
            emb = compute()
            self._write_disk(key, emb)
        self._memory_cache[key] = emb.detach()
        while len(self._memory_cache) > 32:
            self._memory_cache.popitem(last=False)
        return emb.to(self.device)

    def encode_prompts(self, prompts: Sequence[str], trim: bool = True) -> Tensor:
        """Normalised embeddings of raw prompts, ``(len(prompts), embed_dim)``, chunked.

        ``trim``: run each chunk on a context cut to its longest prompt, with
        prompts grouped by length (same embeddings, see the module doc); it
        applies only to causal text towers that pool the end-of-text token.
        """
        prompts = list(prompts)
        if not prompts:
            return torch.empty(0, self.embed_dim, device=self.device)
        self._check_length(prompts)
        tokens = self.tokenizer(prompts)
        trim = trim and self.can_trim_context
        lengths = _token_lengths(tokens)
        # grouped by length, chunks trim more; the results go back in prompt order
        order = torch.argsort(lengths, stable=True) if trim else torch.arange(len(prompts))
        chunks = order.split(self.chunk_size)
        iterator = chunks
        if self.progress and len(chunks) > 4:
            from tqdm import tqdm
            iterator = tqdm(chunks, desc=f'text prompts ({len(prompts)})', unit='chunk', leave=False)
        out = torch.empty(len(prompts), self.embed_dim, device=self.device)
        with torch.no_grad():
            for index in iterator:
                chunk = tokens[index]
                if trim:
                    chunk = chunk[:, :int(lengths[index].max())]
                with self._context(chunk.shape[1]):
                    emb = self.text(chunk.to(self.device)).float()
                out[index.to(self.device)] = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return out

    @property
    def can_trim_context(self) -> bool:
        """Whether padding after the end-of-text token cannot change an embedding:
        a causal mask, end-of-text pooling and no appended class token."""
        text = self.text
        return (isinstance(getattr(text, 'attn_mask', None), Tensor) and
                getattr(text, 'cls_emb', None) is None and
                getattr(text, 'pool_type', 'argmax') in ('argmax', 'eos'))

    @contextmanager
    def _context(self, length: int) -> Iterator[None]:
        """Run the text tower on ``length`` tokens: its causal mask cut to match."""
        full = getattr(self.text, 'attn_mask', None)
        if not isinstance(full, Tensor) or length >= full.shape[-1]:
            yield
            return
        self.text.attn_mask = full[:length, :length]
        try:
            yield
        finally:
            self.text.attn_mask = full

    def cache_key(self, vocab: Vocabulary) -> str:
        """Hex digest of weights fingerprint, templates and names."""
        h = hashlib.sha256()
        h.update(self._fingerprint.encode())
        h.update('\x1e'.join(self.templates).encode())
        for synonyms in vocab.key():
            h.update(('\x1f'.join(synonyms) + '\x1e').encode())
        return h.hexdigest()

    # --------------------------------------------------------------- internals
    def _encode_names(self, names: Sequence[str]) -> Tensor:
        """Normalised mean over templates of each name's normalised prompt embeddings."""
        names = [prompt_name(n) for n in names]
        prompts = [t.format(n) for n in names for t in self.templates]
        emb = self.encode_prompts(prompts).view(len(names), len(self.templates), -1).mean(1)
        return emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def _encode_uncached(self, vocab: Vocabulary) -> Tensor:
        emb = self._encode_names([n for synonyms in vocab.classes for n in synonyms])
        sizes = [len(s) for s in vocab.classes]
        per_class = torch.stack([part.mean(0) for part in emb.split(sizes)])
        return per_class / per_class.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def _check_length(self, prompts: List[str]) -> None:
        limit = self.context_length - 2  # start and end tokens
        long = []
        for prompt in prompts:
            if prompt in self._warned:
                continue
            n = len(self.tokenizer.encode(prompt)) if hasattr(self.tokenizer, 'encode') else 0
            if n > limit:
                self._warned.add(prompt)
                long.append((prompt, n))
        if long:
            prompt, n = long[0]
            more = f' (and {len(long) - 1} more prompts)' if len(long) > 1 else ''
            warnings.warn(f"prompt '{prompt[:60]}...' has {n} tokens, more than the text "
                          f'context ({limit}); it is truncated{more}', stacklevel=3)

    def _weights_fingerprint(self) -> str:
        """Cheap hash of the text tower's weights (a sample of every tensor)."""
        h = hashlib.sha256(self.model_name.encode())
        if self.logit_scale.is_meta:  # built on the meta device: shapes only, no values
            return 'meta'
        for name, tensor in self.text.state_dict().items():
            flat = tensor.detach().reshape(-1)
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(flat[:1024].float().cpu().numpy().tobytes())
            h.update(flat[-1024:].float().cpu().numpy().tobytes())
        return h.hexdigest()[:32]

    def _disk_path(self, key: str) -> Optional[str]:
        if not self.disk_cache_dir:
            return None
        return os.path.join(self.disk_cache_dir, f'{key}.safetensors')

    def _read_disk(self, key: str) -> Optional[Tensor]:
        path = self._disk_path(key)
        if not path or not os.path.isfile(path):
            return None
        try:
            from safetensors.torch import load_file
            return load_file(path)['embeddings']
        except Exception:  # a corrupt cache entry is recomputed, never fatal
            logger.warning('ignoring unreadable text cache entry %s', path)
            return None

    def _write_disk(self, key: str, emb: Tensor) -> None:
        path = self._disk_path(key)
        if not path:
            return
        try:
            from safetensors.torch import save_file
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f'{path}.{os.getpid()}.tmp'
            save_file({'embeddings': emb.detach().cpu().contiguous()}, tmp)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only cache only costs time
            logger.warning('could not write text cache %s: %s', path, exc)


def _token_lengths(tokens: Tensor) -> Tensor:
    """Tokens up to and including the last non-padding one, per row of ``(N, context)``."""
    positions = torch.arange(1, tokens.shape[1] + 1)
    return ((tokens != 0) * positions).amax(1).clamp_min(1)


def build_text_classifier(model_name: str, weights: Optional[str], **kwargs) -> TextClassifier:
    """Convenience constructor with the same arguments as the config type."""
    return TextClassifier(model_name=model_name, weights=weights, **kwargs)


#: how a class with several synonyms is classified: ``'mean'`` averages the
#: synonyms' embeddings (:meth:`TextClassifier.encode`), ``'max'`` takes the
#: largest per-synonym logit (:meth:`TextClassifier.encode_synonyms` grouped by
#: :func:`group_synonyms`, FC-CLIP's rule)
SYNONYM_REDUCTIONS = ('mean', 'max')


def group_synonyms(rows: Tensor, sizes: Sequence[int]) -> Tensor:
    """``(S, E)`` per-synonym rows to ``(K, M, E)``: row ``k`` holds class ``k``'s synonyms.

    ``sizes[k]`` is the number of synonyms of class ``k`` (``M`` the largest);
    a class with fewer repeats its first synonym, which never changes a
    maximum over synonyms. A plain tensor (no index table) keeps the grouping
    with the embeddings, so it survives caching and ONNX export.
    """
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 1 or sum(sizes) != rows.shape[0]:
        raise ValueError(f'synonym counts {sizes} do not fit {rows.shape[0]} rows')
    starts = torch.tensor([0] + sizes[:-1]).cumsum(0)
    offset = torch.arange(max(sizes))
    index = starts[:, None] + torch.where(offset[None] < torch.tensor(sizes)[:, None],
                                          offset[None], 0)
    return rows[index.to(rows.device)]


__all__ = ['TextClassifier', 'build_text_classifier', 'default_cache_dir', 'SYNONYM_REDUCTIONS',
           'group_synonyms']
