"""The segmentor's vocabularies: classes with synonyms, and which are things.

A :class:`SegVocabulary` comes from a data set's metainfo (``classes``,
optional ``synonyms`` per class, ``thing_classes`` / ``stuff_classes``) or from
a user's vocabulary string. Things get instance ids in panoptic output and are
the only classes of instance output; with no thing/stuff information every
class counts as a thing (instance output covers everything; panoptic output
then gives every segment its own id).

The training vocabulary travels inside checkpoints (as module extra state),
so a trained model knows which test classes were seen in training without
the training data set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ...errors import VocabularyError
from ...text.splits import seen_mask
from ...text.vocabulary import (VocabSpec, Vocabulary, normalize_name, parse_vocabulary,
                               vocabulary_from_metainfo)


@dataclass(frozen=True)
class SegVocabulary:
    """Classes (synonym tuples, first = display name) and their thing flags."""

    vocab: Vocabulary
    is_thing: Tuple[bool, ...]

    def __post_init__(self):
        if len(self.is_thing) != len(self.vocab):
            raise VocabularyError(f'{len(self.is_thing)} thing flags for {len(self.vocab)} classes')

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def names(self):
        return self.vocab.names

    @property
    def classes(self) -> Tuple[Tuple[str, ...], ...]:
        return self.vocab.classes

    def thing_tensor(self, device=None) -> Tensor:
        return torch.tensor(self.is_thing, dtype=torch.bool, device=device)

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_spec(cls, spec: Union[VocabSpec, 'SegVocabulary'],
                  thing_classes: Optional[Sequence[str]] = None,
                  stuff_classes: Optional[Sequence[str]] = None) -> 'SegVocabulary':
        """From a vocabulary string / list / :class:`Vocabulary`, with optional thing names."""
        if isinstance(spec, SegVocabulary):
            return spec
        vocab = parse_vocabulary(spec)
        return cls(vocab, _thing_flags(vocab.classes, thing_classes, stuff_classes))

    @classmethod
    def from_metainfo(cls, metainfo: Mapping[str, Any], where: str = 'the data set'
                      ) -> 'SegVocabulary':
        """From a data set's metainfo: ``classes`` (+ ``synonyms``, ``thing_classes``)."""
        vocab = vocabulary_from_metainfo(metainfo, where)
        # things / stuff are listed by the data set's own class names, which a
        # metainfo 'vocabulary' (e.g. FC-CLIP's names) replaces
        names = tuple((str(raw),) for raw in metainfo['classes']) \
            if metainfo.get('vocabulary') is not None else vocab.classes
        return cls(vocab, _thing_flags(names, metainfo.get('thing_classes'),
                                       metainfo.get('stuff_classes')))

    # ------------------------------------------------------------- persistence
    def to_state(self) -> Dict[str, list]:
        """Plain lists (weights-only-loadable)."""
        return dict(classes=[list(c) for c in self.vocab.classes], is_thing=list(self.is_thing))

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> 'SegVocabulary':
        return cls(Vocabulary.from_names([tuple(c) for c in state['classes']], shared_names=True),
                   tuple(bool(t) for t in state['is_thing']))


def _thing_flags(classes: Sequence[Sequence[str]], thing_classes: Optional[Sequence[str]],
                 stuff_classes: Optional[Sequence[str]]) -> Tuple[bool, ...]:
    if thing_classes is not None:
        things = {normalize_name(str(n)) for n in thing_classes}
        return tuple(any(normalize_name(n) in things for n in c) for c in classes)
    if stuff_classes is not None:
        stuff = {normalize_name(str(n)) for n in stuff_classes}
        return tuple(not any(normalize_name(n) in stuff for n in c) for c in classes)
    return tuple(True for _ in classes)


def seen_flags(test: SegVocabulary, train: Optional[SegVocabulary]) -> Tensor:
    """``(K_test,)`` bool: test classes that were in the training vocabulary.

    With no training vocabulary known, every class counts as unseen (the
    out-of-vocabulary weight ``beta`` applies everywhere).
    """
    if train is None:
        return torch.zeros(len(test), dtype=torch.bool)
    return torch.as_tensor(seen_mask(test.classes, train.classes), dtype=torch.bool)


__all__ = ['SegVocabulary', 'seen_flags']
