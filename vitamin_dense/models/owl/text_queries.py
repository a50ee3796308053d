"""Class embeddings from a text tower that is being fine-tuned (OWL-ViT trains both towers).

A frozen tower's class embeddings are computed once and cached
(:class:`~vitamin_dense.text.TextClassifier`). A trainable one changes at
every step, so:

* in training, each class is encoded with gradient from one randomly chosen
  synonym in one randomly chosen prompt template (OWL-ViT's
  ``add_random_prompts``: one random prompt per label and step), and only the
  classes a batch uses are encoded;
* in evaluation, the full ensemble (every template, every synonym; the same
  averaging as :class:`~vitamin_dense.text.TextClassifier`) is computed without
  gradient and kept until the next training step changes the weights.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...text.vocabulary import Vocabulary, prompt_name


def _normalize(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class TrainableTextQueries:
    """Encode vocabularies with gradient through ``text_encoder.text``.

    Args:
        text_encoder: a :class:`~vitamin_dense.text.TextClassifier` (its
            ``text`` tower, ``tokenizer``, ``templates`` and ``chunk_size``).
    """

    def __init__(self, text_encoder):
        self.encoder = text_encoder
        self._cache: 'OrderedDict[Tuple, Tensor]' = OrderedDict()

    def _embed(self, prompts: Sequence[str]) -> Tensor:
        enc = self.encoder
        out = []
        for start in range(0, len(prompts), enc.chunk_size):
            tokens = enc.tokenizer(list(prompts[start:start + enc.chunk_size])).to(enc.device)
            out.append(_normalize(enc.text(tokens).float()))
        return torch.cat(out)

    def train_embeddings(self, classes: Sequence[Sequence[str]],
                         generator: Optional[torch.Generator] = None) -> Tensor:
        """``(K, E)`` with gradient: one random synonym and template per class."""
        templates = self.encoder.templates
        prompts = []
        for synonyms in classes:
            name = synonyms[int(torch.randint(len(synonyms), (1,), generator=generator))]
            template = templates[int(torch.randint(len(templates), (1,), generator=generator))]
            prompts.append(template.format(prompt_name(name)))
        self._cache.clear()  # the weights are about to change
        return self._embed(prompts)

    @torch.no_grad()
    def eval_embeddings(self, vocab: Vocabulary) -> Tensor:
        """``(K, E)`` template and synonym ensemble of the current weights (cached)."""
        key = vocab.key()
        if key not in self._cache:
            templates = self.encoder.templates
            names = [prompt_name(n) for synonyms in vocab.classes for n in synonyms]
            emb = self._embed([t.format(n) for n in names for t in templates])
            emb = _normalize(emb.view(len(names), len(templates), -1).mean(1))
            sizes = [len(s) for s in vocab.classes]
            self._cache[key] = _normalize(torch.stack([p.mean(0) for p in emb.split(sizes)]))
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return self._cache[key]

    def invalidate(self) -> None:
        self._cache.clear()


__all__ = ['TrainableTextQueries']
