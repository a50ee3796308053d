"""The released Sliding F-ViT's class embeddings: its prompt recipe and fixed embedding tables.

The published F-ViT (ViTamin's ``vitamin_fvit``, after CLIPSelf's F-ViT) embeds
each class from its **category name only** (no synonyms) with ViLD's 63
prompt templates:

* the name is lower-cased, ``_`` becomes a space, ``/`` becomes ``" or "`` and
  a trailing ``.`` is dropped;
* ``{article}`` is ``an`` when the raw name starts with a lower-case vowel,
  else ``a``;
* a prompt that starts with ``a`` or ``the`` gets the prefix ``"This is "``;
* every prompt embedding is L2-normalised, the mean over templates is
  L2-normalised again;
* ``background`` is embedded the same way and is the background class.

:class:`FViTTextEncoder` is a :class:`~vitamin_dense.text.TextClassifier` with
that recipe, plus an optional fixed table of ``name -> embedding`` (the
released checkpoints' own class embeddings, or the reference's
``datasets/embeddings/*.pt`` files converted by
``tools/convert_checkpoint.py fvit``): names in the table use its vectors,
other names are encoded with the recipe. The table travels in checkpoints
(the module's extra state).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import WeightsError
from ...registry import MODELS
from ...text.classifier import TextClassifier
from ...text.vocabulary import VocabSpec, Vocabulary, normalize_name, parse_vocabulary

# ViLD's prompt ensemble as F-ViT uses it ('{article}': 'a' / 'an').
FVIT_TEMPLATES: Tuple[str, ...] = (
    'There is {article} {} in the scene.',
    'There is the {} in the scene.',
    'a photo of {article} {} in the scene.',
    'a photo of the {} in the scene.',
    'a photo of one {} in the scene.',
    'itap of {article} {}.',
    'itap of my {}.',
    'itap of the {}.',
    'a photo of {article} {}.',
    'a photo of my {}.',
    'a photo of the {}.',
    'a photo of one {}.',
    'a photo of many {}.',
    'a good photo of {article} {}.',
    'a good photo of the {}.',
    'a bad photo of {article} {}.',
    'a bad photo of the {}.',
    'a photo of a nice {}.',
    'a photo of the nice {}.',
    'a photo of a cool {}.',
    'a photo of the cool {}.',
    'a photo of a weird {}.',
    'a photo of the weird {}.',
    'a photo of a small {}.',
    'a photo of the small {}.',
    'a photo of a large {}.',
    'a photo of the large {}.',
    'a photo of a clean {}.',
    'a photo of the clean {}.',
    'a photo of a dirty {}.',
    'a photo of the dirty {}.',
    'a bright photo of {article} {}.',
    'a bright photo of the {}.',
    'a dark photo of {article} {}.',
    'a dark photo of the {}.',
    'a photo of a hard to see {}.',
    'a photo of the hard to see {}.',
    'a low resolution photo of {article} {}.',
    'a low resolution photo of the {}.',
    'a cropped photo of {article} {}.',
    'a cropped photo of the {}.',
    'a close-up photo of {article} {}.',
    'a close-up photo of the {}.',
    'a jpeg corrupted photo of {article} {}.',
    'a jpeg corrupted photo of the {}.',
    'a blurry photo of {article} {}.',
    'a blurry photo of the {}.',
    'a pixelated photo of {article} {}.',
    'a pixelated photo of the {}.',
    'a black and white photo of the {}.',
    'a black and white photo of {article} {}.',
    'a plastic {}.',
    'the plastic {}.',
    'a toy {}.',
    'the toy {}.',
    'a plushie {}.',
    'the plushie {}.',
    'a cartoon {}.',
    'the cartoon {}.',
    'an embroidered {}.',
    'the embroidered {}.',
    'a painting of the {}.',
    'a painting of a {}.',
)

BACKGROUND = 'background'
TABLE_FORMAT = 'vitamin-dense class embeddings'


def fvit_prompt_name(name: str) -> str:
    """The form of a category name in F-ViT's prompts (see the module doc)."""
    return name.replace('_', ' ').replace('/', ' or ').lower().rstrip('.')


def fvit_prompts(name: str, templates: Sequence[str] = FVIT_TEMPLATES) -> List[str]:
    """F-ViT's prompts for one category name, one per template."""
    article = 'an' if name[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'
    shown = fvit_prompt_name(name)
    prompts = []
    for template in templates:
        text = template.format(shown, article=article)
        prompts.append('This is ' + text if text.startswith(('a', 'the')) else text)
    return prompts


# ----------------------------------------------------------------- table files
def save_class_embeddings(path: str, names: Sequence[str], embeddings: Tensor) -> None:
    """Write a ``name -> embedding`` table as safetensors (names in the metadata), atomically."""
    from safetensors.torch import save_file
    names = [str(n) for n in names]
    if embeddings.dim() != 2 or embeddings.shape[0] != len(names):
        raise ValueError(f'{len(names)} names for embeddings of shape {tuple(embeddings.shape)}')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.{os.getpid()}.partial'
    try:
        save_file({'embeddings': embeddings.detach().float().cpu().contiguous()}, tmp,
                  metadata={'format': TABLE_FORMAT, 'names': json.dumps(names)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_class_embeddings(path: str) -> Tuple[List[str], Tensor]:
    """Read a table written by :func:`save_class_embeddings` (one-line errors)."""
    if not os.path.isfile(path):
        raise WeightsError(f'class-embedding file not found: {path}')
    try:
        from safetensors import safe_open
        with safe_open(path, framework='pt') as f:
            meta = f.metadata() or {}
            embeddings = f.get_tensor('embeddings')
        names = json.loads(meta['names'])
    except Exception as exc:  # any unreadable file is the same user error
        why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path} is not a class-embedding table ({why}); convert the "
                           "reference's embedding file with tools/convert_checkpoint.py fvit "
                           'SRC DST.safetensors') from exc
    if embeddings.dim() != 2 or embeddings.shape[0] != len(names):
        raise WeightsError(f'{path}: {len(names)} names for embeddings of shape '
                           f'{tuple(embeddings.shape)}')
    return list(names), embeddings.float()


# -------------------------------------------------------------------- encoder
@MODELS.register_module()
class FViTTextEncoder(TextClassifier):
    """CLIP text tower with the released F-ViT's class-embedding recipe and optional table.

    Args:
        templates: prompt templates with ``{}`` and optionally ``{article}``
            (default: F-ViT's 63, :data:`FVIT_TEMPLATES`).
        class_embeddings: a table file (:func:`save_class_embeddings`) whose
            vectors replace the encoded ones for the names it holds.
        **kwargs: :class:`~vitamin_dense.text.TextClassifier` arguments.
    """

    def __init__(self, *args, templates: Sequence[str] = FVIT_TEMPLATES,
                 class_embeddings: Optional[str] = None, **kwargs):
        super().__init__(*args, templates=templates, **kwargs)
        self._table_names: List[str] = []
        self._table = torch.zeros(0, self.embed_dim)
        if class_embeddings:
            self.set_table(*load_class_embeddings(class_embeddings))

    # ------------------------------------------------------------------- table
    @property
    def table_names(self) -> List[str]:
        return list(self._table_names)

    def set_table(self, names: Sequence[str], embeddings: Tensor) -> None:
        """Use these ``(N, E)`` vectors for these names (replaces the current table)."""
        names = [str(n) for n in names]
        if embeddings.dim() != 2 or embeddings.shape != (len(names), self.embed_dim):
            raise WeightsError(f'class-embedding table of shape {tuple(embeddings.shape)} for '
                               f'{len(names)} names does not fit the text tower '
                               f'(embed_dim {self.embed_dim})')
        keys = [normalize_name(n) for n in names]
        if len(set(keys)) != len(keys):
            raise WeightsError('class-embedding table names a class twice')
        self._table_names = names
        self._table = F.normalize(embeddings.detach().float().cpu(), dim=-1)
        self._memory_cache.clear()

    def get_extra_state(self) -> dict:
        return {'table_names': list(self._table_names), 'table': self._table.clone()}

    def set_extra_state(self, state) -> None:
        if isinstance(state, dict) and 'table' in state:
            self.set_table(state.get('table_names', []), state['table'])

    # ----------------------------------------------------------------- encoding
    def cache_key(self, vocab: Vocabulary) -> str:
        h = hashlib.sha256(('fvit-recipe:' + super().cache_key(vocab)).encode())
        return h.hexdigest()

    def encode(self, vocabulary: VocabSpec) -> Tensor:
        """``(num_classes, embed_dim)`` normalised embeddings: the table's, else the recipe's."""
        vocab = parse_vocabulary(vocabulary)
        if not self._table_names:
            return super().encode(vocab)
        index = {normalize_name(n): i for i, n in enumerate(self._table_names)}
        rows = [index.get(normalize_name(n)) for n in vocab.names]
        out = torch.empty(len(vocab), self.embed_dim)
        found = [i for i, r in enumerate(rows) if r is not None]
        if found:
            out[found] = self._table[[rows[i] for i in found]]
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing:
            encoded = super().encode(Vocabulary(tuple((vocab.names[i],) for i in missing)))
            out[missing] = encoded.float().cpu()
        return out.to(self.device)

    def _encode_names(self, names: Sequence[str]) -> Tensor:
        """Per name: normalised mean over F-ViT's prompts of their normalised embeddings."""
        prompts = [p for name in names for p in fvit_prompts(name, self.templates)]
        emb = self.encode_prompts(prompts).view(len(names), len(self.templates), -1).mean(1)
        return F.normalize(emb, dim=-1)

    def _encode_uncached(self, vocab: Vocabulary) -> Tensor:
        return self._encode_names(vocab.names)  # the category name only, as published


__all__ = ['FVIT_TEMPLATES', 'BACKGROUND', 'fvit_prompt_name', 'fvit_prompts',
           'save_class_embeddings', 'load_class_embeddings', 'FViTTextEncoder']
