"""Seen / unseen classes of an evaluation vocabulary (FC-CLIP's rule).

FC-CLIP calls an evaluation class *seen* when one of its names is also a name
of a training class (its geometric ensemble then uses the "seen" exponent, and
open-vocabulary reports split metrics by it). Names are compared as every
vocabulary compares them (:func:`~vitamin_dense.text.vocabulary.normalize_name`:
case, ``_`` and extra spaces ignored), nothing more: on FC-CLIP's curated
lists this is its exact-string rule (64 of ADE20K-150's classes are seen
against COCO panoptic). Raw COCO names such as ``wall-other-merged`` therefore
match nothing: the data sets' vocabularies name their classes (``wall``).

:func:`canonical_class_name` (``wall-other-merged`` -> ``wall``) remains for
turning raw data-set names into readable ones.

Core module: no OpenMMLab import.
"""
from __future__ import annotations

import re
from typing import Iterable, List, Sequence, Set, Union

from .vocabulary import normalize_name

ClassSpec = Union[str, Sequence[str]]
_SUFFIXES = ('merged', 'other', 'stuff')


def canonical_class_name(name: str) -> str:
    """Comparison form of a class name (see the module doc)."""
    words = re.sub(r'[\s_\-]+', ' ', name).strip().lower().split(' ')
    while len(words) > 1 and words[-1] in _SUFFIXES:
        words.pop()
    return ' '.join(w for w in words if w)


def class_names(item: ClassSpec) -> List[str]:
    """All names of one class: a synonym tuple, or a string of comma-separated synonyms."""
    if isinstance(item, str):
        return [n.strip() for n in item.split(',') if n.strip()]
    return [str(n).strip() for n in item if str(n).strip()]


def _as_classes(classes) -> List[List[str]]:
    # a Vocabulary (duck-typed: .classes holds synonym tuples) or a sequence of classes
    items = getattr(classes, 'classes', classes)
    return [class_names(item) for item in items]


def name_set(classes: Iterable[ClassSpec]) -> Set[str]:
    """Normalised names of every synonym of every class."""
    return {normalize_name(n) for names in _as_classes(classes) for n in names}


def seen_mask(eval_classes: Iterable[ClassSpec], train_classes: Iterable[ClassSpec]) -> List[bool]:
    """For each evaluation class, whether any of its names is a training class name.

    Args:
        eval_classes: classes to label, each a synonym tuple or a string of
            comma-separated synonyms (or a ``Vocabulary``).
        train_classes: classes the model was trained on, in the same forms.

    Returns:
        One bool per evaluation class, in order.
    """
    train = name_set(train_classes)
    return [any(normalize_name(n) in train for n in names)
            for names in _as_classes(eval_classes)]
