"""Pseudo-negative queries that never name an object of the vocabulary.

OWL-ViT trains every image against its positive classes plus *negative* class
names: classes verified absent (LVIS ``neg_category_ids``) and names sampled
at random. A negative that names an object which is in the image teaches the
detector that this object is *not* that name; when the name is a synonym, a
hyponym (a kind of) or a hypernym of a novel class, the novel class is
trained down on its own objects, and a synonym of a base class gives one box
a positive and a negative target. So names are compared by **meaning**, not by
spelling:

* every name is resolved to WordNet 3.0 synsets through the bundled LVIS v1
  category table (each category's name and synonyms share its ``synset``) and
  our own map of the 80 COCO classes (``assets/coco_wordnet.json``: the senses
  a COCO box can be, and further names of the same objects, such as young
  animals, that WordNet files under another parent);
* a pool name is dropped when one of its synsets is, or descends from
  (WordNet hypernymy, ``assets/wordnet_hypernyms.json``), a synset of a
  vocabulary class (``bulldog`` -> dog, ``loveseat`` -> sofa = couch), or is
  an ancestor of one (a more general name of the same object);
* and, as before, when a name (own or an LVIS synonym) equals or contains a
  vocabulary name as whole words (``keyboard`` / ``computer keyboard``,
  ``ski`` / ``skis``).

Loose on purpose: dropping a harmless negative costs little, training a real
class as a negative costs recall.

The federated loss of LVIS (:func:`federated_query_mask`) adds random base
classes to each image's verified negatives, up to a total as OWL-ViT's
``add_random_negative_labels(total_num_negatives=50)`` does, drawn in
proportion to ``image_count ** power`` (Detic: 0.5; OWL's queue: about 1).
"""
from __future__ import annotations

import json
import logging
import os.path as osp
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import torch
from torch import Tensor

from ...errors import ConfigError
from ...text.vocabulary import Vocabulary, normalize_name

logger = logging.getLogger(__name__)

ASSETS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'assets')
DEFAULT_FEDERATED_NEGATIVES = 50


# --------------------------------------------------------------------- words
def name_key(name: str) -> str:
    """A class name without qualifiers: ``'bus_(vehicle)'`` -> ``'bus'``."""
    return normalize_name(re.sub(r'\([^)]*\)', ' ', name))


class WordIndex:
    """Names that may name the same thing by their words (the pre-meaning rule).

    Equal up to spaces or a plural ``s`` (``hot dog`` / ``hotdog``, ``ski`` /
    ``skis``), or one contains the other as whole words (``keyboard`` /
    ``computer keyboard``). Built once per vocabulary, then each query is
    linear in its own words.
    """

    def __init__(self, names: Iterable[str]):
        self.squashed: Set[str] = set()
        self.phrases: Set[Tuple[str, ...]] = set()
        self.grams: Set[Tuple[str, ...]] = set()
        for name in names:
            key = name_key(name)
            if not key:
                continue
            squash = key.replace(' ', '')
            self.squashed |= {squash, squash.rstrip('s')}
            words = tuple(key.split())
            self.phrases.add(words)
            self.grams |= _ngrams(words)

    def conflicts(self, name: str) -> bool:
        key = name_key(name)
        if not key:
            return False
        squash = key.replace(' ', '')
        if squash in self.squashed or squash.rstrip('s') in self.squashed:
            return True
        words = tuple(key.split())
        return words in self.grams or bool(_ngrams(words) & self.phrases)


def _ngrams(words: Tuple[str, ...]) -> Set[Tuple[str, ...]]:
    return {words[i:j] for i in range(len(words)) for j in range(i + 1, len(words) + 1)}


def names_conflict(key: str, taken_keys: Sequence[str]) -> bool:
    """Could ``key`` name the same thing as one of ``taken_keys``, by its words?"""
    return WordIndex(taken_keys).conflicts(key)


# ------------------------------------------------------------------- meaning
@dataclass
class MeaningIndex:
    """Names -> WordNet synsets, synonyms, and the hypernym graph between synsets.

    Args:
        synsets: normalised name -> synsets it can denote.
        synonyms: normalised name -> further names of the same thing.
        hypernyms: synset -> its direct WordNet hypernyms (and instance hypernyms).
    """

    synsets: Dict[str, Set[str]] = field(default_factory=dict)
    synonyms: Dict[str, Set[str]] = field(default_factory=dict)
    hypernyms: Dict[str, Tuple[str, ...]] = field(default_factory=dict)

    def add(self, names: Sequence[str], synsets: Iterable[str] = ()) -> None:
        """Declare ``names`` synonyms of each other, denoting ``synsets``."""
        keys = [normalize_name(n) for n in names if normalize_name(n)]
        synsets = set(synsets)
        for key in keys:
            self.synsets.setdefault(key, set()).update(synsets)
            self.synonyms.setdefault(key, set()).update(k for k in keys if k != key)

    def synsets_of(self, names: Iterable[str]) -> Set[str]:
        out: Set[str] = set()
        for name in names:
            for key in {normalize_name(name), name_key(name)}:
                out |= self.synsets.get(key, set())
        return out

    def names_of(self, names: Iterable[str]) -> Set[str]:
        """The names and every synonym the index knows of them."""
        out: Set[str] = set()
        for name in names:
            key = normalize_name(name)
            out.add(key)
            out |= self.synonyms.get(key, set())
        return out

    def ancestors(self, synset: str) -> FrozenSet[str]:
        """All WordNet hypernyms of ``synset`` (transitively), without itself."""
        return _ancestors(self, synset)

    def __hash__(self) -> int:  # identity: lets lru_cache key on the index
        return id(self)

    def merged(self, extra: Optional[Mapping]) -> 'MeaningIndex':
        """A copy with more knowledge: ``dict(synsets={name: [...]}, synonyms={name: [...]},
        hypernyms={synset: [...]})`` (any key optional)."""
        out = MeaningIndex({k: set(v) for k, v in self.synsets.items()},
                           {k: set(v) for k, v in self.synonyms.items()}, dict(self.hypernyms))
        extra = dict(extra or {})
        unknown = set(extra) - {'synsets', 'synonyms', 'hypernyms'}
        if unknown:
            raise ConfigError(f'negative_meaning has unknown key(s) {sorted(unknown)}; known: '
                              'synsets, synonyms, hypernyms')
        for name, synsets in (extra.get('synsets') or {}).items():
            out.add([name], [synsets] if isinstance(synsets, str) else synsets)
        for name, names in (extra.get('synonyms') or {}).items():
            out.add([name] + list(names))
        for synset, parents in (extra.get('hypernyms') or {}).items():
            out.hypernyms[synset] = tuple(out.hypernyms.get(synset, ())) + tuple(parents)
        return out


@lru_cache(maxsize=65536)
def _ancestors(index: MeaningIndex, synset: str) -> FrozenSet[str]:
    seen: Set[str] = set()
    todo = list(index.hypernyms.get(synset, ()))
    while todo:
        parent = todo.pop()
        if parent not in seen:
            seen.add(parent)
            todo.extend(index.hypernyms.get(parent, ()))
    return frozenset(seen)


def _read_json(name: str):
    with open(osp.join(ASSETS, name), encoding='utf-8') as f:
        return json.load(f)


def lvis_categories() -> List[dict]:
    """The bundled LVIS v1 category table (id, name, synset, synonyms, frequency, image_count)."""
    table = _read_json('lvis_v1_categories.json')
    return [dict(zip(table['columns'], row)) for row in table['rows']]


@lru_cache(maxsize=1)
def bundled_meaning() -> MeaningIndex:
    """LVIS v1 synsets and synonyms, our COCO map, and the WordNet hypernym graph."""
    index = MeaningIndex(hypernyms={k: tuple(v) for k, v in
                                    _read_json('wordnet_hypernyms.json').items()})
    for cat in lvis_categories():
        index.add([cat['name']] + list(cat['synonyms']), [cat['synset']])
    for name, entry in _read_json('coco_wordnet.json').items():
        if not name.startswith('_'):
            index.add([name] + list(entry['names']), entry['synsets'])
    return index


def build_meaning(spec) -> Optional[MeaningIndex]:
    """``'wordnet'`` (bundled), None (words only), or a dict of extra knowledge."""
    if spec is None or spec is False:
        return None
    if spec == 'wordnet' or spec is True:
        return bundled_meaning()
    if isinstance(spec, MeaningIndex):
        return spec
    if isinstance(spec, Mapping):
        return bundled_meaning().merged(spec)
    raise ConfigError(f"negative_meaning must be 'wordnet', None or a dict, got {spec!r}")


# --------------------------------------------------------------------- pools
@dataclass
class Protected:
    """What the vocabulary names: its names (as words) and its synsets with their ancestors."""

    words: WordIndex
    synsets: Set[str]
    ancestors: Set[str]

    @classmethod
    def of(cls, classes: Iterable[Sequence[str]], meaning: Optional[MeaningIndex],
           extra_names: Iterable[str] = ()) -> 'Protected':
        names = {normalize_name(n) for syn in classes for n in syn} | \
            {normalize_name(n) for n in extra_names}
        synsets: Set[str] = set()
        ancestors: Set[str] = set()
        if meaning is not None:
            names = meaning.names_of(names)
            synsets = meaning.synsets_of(names)
            for s in synsets:
                ancestors |= meaning.ancestors(s)
        return cls(WordIndex(names), synsets, ancestors)

    def names_same_thing(self, synonyms: Sequence[str], meaning: Optional[MeaningIndex]) -> bool:
        """Could a pool class (its synonyms) name an object of the vocabulary?"""
        names = set(synonyms) if meaning is None else meaning.names_of(synonyms)
        if any(self.words.conflicts(n) for n in names):
            return True
        if meaning is None:
            return False
        for s in meaning.synsets_of(names):
            if s in self.synsets or s in self.ancestors or meaning.ancestors(s) & self.synsets:
                return True
        return False


def filter_pool(pool: Vocabulary, protected: Protected,
                meaning: Optional[MeaningIndex]) -> Tuple[Vocabulary, List[str]]:
    """The pool classes that name nothing of the vocabulary, and the names dropped."""
    kept, dropped = [], []
    for synonyms in pool.classes:
        if protected.names_same_thing(synonyms, meaning):
            dropped.append(synonyms[0])
        else:
            kept.append(synonyms)
    if not kept:
        raise ConfigError('negative_vocabulary has no name outside the vocabulary')
    return Vocabulary(tuple(kept)), dropped


# ------------------------------------------------------------------ federated
def federated_query_mask(positives: Sequence[Tensor], verified_negatives: Sequence[Sequence[int]],
                         not_exhaustive: Sequence[Sequence[int]], num_train: int,
                         num_queries: int, total_negatives: int = DEFAULT_FEDERATED_NEGATIVES,
                         weights: Optional[Tensor] = None,
                         generator: Optional[torch.Generator] = None) -> Tensor:
    """``(B, Q)``: the queries each image's class loss covers (LVIS federated loss).

    Per image: its positive classes, its verified-absent classes, and random
    training classes (not positive, not listed as not exhaustively annotated)
    until it has ``total_negatives`` negatives (OWL-ViT keeps all verified
    negatives when there are more). Queries from ``num_train`` on are
    pseudo-negatives from a name pool and always count. ``verified_negatives``
    None for an image means no federated information: every query counts.
    """
    b = len(positives)
    mask = torch.zeros(b, num_queries, dtype=torch.bool)
    mask[:, num_train:] = True
    if weights is None:
        weights = torch.ones(num_train)
    weights = weights.detach().float().cpu().clamp_min(0)[:num_train]
    for i in range(b):
        neg = verified_negatives[i]
        if neg is None:
            mask[i, :num_train] = True
            continue
        pos = torch.as_tensor(positives[i], dtype=torch.long).cpu()
        neg = torch.as_tensor(list(neg), dtype=torch.long)
        mask[i, pos] = True
        mask[i, neg] = True
        need = total_negatives - int(neg.numel())
        if need <= 0:
            continue
        w = weights.clone()
        w[pos] = 0
        w[neg] = 0
        skip = torch.as_tensor(list(not_exhaustive[i] or ()), dtype=torch.long)
        if skip.numel():
            w[skip] = 0
        available = int((w > 0).sum())
        if available == 0:
            continue
        picks = torch.multinomial(w, min(need, available), replacement=False, generator=generator)
        mask[i, picks] = True
    return mask


__all__ = ['MeaningIndex', 'WordIndex', 'Protected', 'bundled_meaning', 'build_meaning',
           'filter_pool', 'federated_query_mask', 'lvis_categories', 'name_key', 'names_conflict',
           'DEFAULT_FEDERATED_NEGATIVES']
