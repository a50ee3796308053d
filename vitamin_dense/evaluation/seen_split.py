"""Which evaluation classes are *seen* (named like a training class), for metric splits."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from ..text.splits import class_names, seen_mask
from ..text.vocabulary import VocabSpec, parse_vocabulary


def eval_class_names(dataset_meta: dict) -> List[Tuple[str, ...]]:
    """All names of each evaluation class: the metainfo's ``vocabulary`` entry
    when it has one (the names the model prompts with, so that metric and model
    agree on what is seen), else its synonyms plus the official class name."""
    classes = dataset_meta['classes']
    complete = dataset_meta.get('vocabulary')
    if complete is not None and len(complete) == len(classes):
        return [tuple(class_names(names)) for names in complete]
    synonyms = dataset_meta.get('synonyms') or [()] * len(classes)
    if len(synonyms) != len(classes):
        synonyms = [()] * len(classes)
    return [tuple(class_names(syn)) + tuple(class_names(name))
            for name, syn in zip(classes, synonyms)]


def resolve_seen_flags(dataset_meta: dict,
                       train_vocabulary: Optional[VocabSpec]) -> Optional[List[bool]]:
    """One bool per class of ``dataset_meta`` (None without a training vocabulary).

    ``train_vocabulary`` is anything :func:`~vitamin_dense.text.parse_vocabulary`
    accepts: ``'dataset:coco_panoptic'``, a list of names, a file...
    """
    if train_vocabulary is None:
        return None
    if isinstance(train_vocabulary, (list, tuple)) and not train_vocabulary:
        return [False] * len(dataset_meta['classes'])
    vocab = parse_vocabulary(train_vocabulary)
    return seen_mask(eval_class_names(dataset_meta), vocab.classes)


def split_indices(flags: Optional[Sequence[bool]]) -> List[Tuple[str, List[int]]]:
    """``[('seen', [...]), ('unseen', [...])]`` class indices (empty list if no flags)."""
    if flags is None:
        return []
    return [('seen', [i for i, f in enumerate(flags) if f]),
            ('unseen', [i for i, f in enumerate(flags) if not f])]
