"""Class names and synonyms of the evaluation data sets, and their built-in vocabularies.

Names come at run time from mmdet / mmseg ``METAINFO`` where those packages
have them (COCO panoptic, ADE20K-150, Cityscapes, Mapillary Vistas, Pascal
Context 59, Pascal VOC). ADE20K-847 and Pascal Context 459, which they lack,
are read from files of the data set (:func:`read_class_file`): Pascal
Context's ``labels.txt`` (``"<id>: <name>"`` lines) and, for ADE20K-847, the
class list of the preparation step that wrote the label files (see
``tools/extract_class_names.py``).

Synonyms: a class's own comma-separated names (ADE20K's WordNet lists), a
cleaned display name for COCO's ``*-merged`` / ``*-stuff`` / ``*-other``
names, and a modest table of our own (:data:`EXTRA_SYNONYMS`). A synonym that
another class of the same data set already uses is dropped, so every
vocabulary is valid (no name in two classes).
"""
from __future__ import annotations

import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import VocabularyError
from ..text.splits import canonical_class_name
from ..text.vocabulary import normalize_name, register_builtin_vocabulary
from .errors import DatasetError, DatasetFileError

Synonyms = Tuple[Tuple[str, ...], ...]

# Our own synonyms, keyed by canonical class name (lower case, single spaces).
EXTRA_SYNONYMS: Dict[str, Tuple[str, ...]] = {
    'person': ('people', 'man', 'woman', 'child', 'pedestrian'),
    'bicycle': ('bike',),
    'motorcycle': ('motorbike',),
    'motorbike': ('motorcycle',),
    'airplane': ('aeroplane', 'plane'),
    'aeroplane': ('airplane', 'plane'),
    'tv': ('television', 'tv monitor'),
    'tvmonitor': ('tv monitor', 'television', 'monitor'),
    'television receiver': ('television', 'tv'),
    'couch': ('sofa',),
    'sofa': ('couch',),
    'cell phone': ('mobile phone', 'smartphone'),
    'potted plant': ('houseplant', 'plant in a pot'),
    'pottedplant': ('potted plant', 'houseplant'),
    'dining table': ('table for dining',),
    'diningtable': ('dining table',),
    'sports ball': ('ball',),
    'hair drier': ('hair dryer',),
    'windowpane': ('window', 'window pane'),
    'bathtub': ('tub', 'bath'),
    'railing': ('rail',),
    'streetlight': ('street lamp', 'street light'),
    'apparel': ('clothes', 'clothing'),
    'swimming pool': ('pool',),
    'waterfall': ('falls',),
    'ashcan': ('trash can', 'garbage can', 'bin'),
    'sky': ('clouds',),
    'grass': ('lawn',),
    'tree': ('trees',),
    'car': ('automobile',),
    'rug': ('carpet',),
    'rider': ('cyclist',),
    'vegetation': ('plants', 'bushes'),
    'terrain': ('ground', 'soil'),
    'playingfield': ('playing field', 'sports field'),
    'sea': ('ocean',),
    'road': ('street',),
    'bedclothes': ('bed sheet', 'bedding'),
    'shelves': ('shelf',),
}

# COCO-style "a-b" names whose words should not simply swap ("wall-brick" -> "brick wall").
_DISPLAY_OVERRIDES: Dict[str, str] = {
    'window-blind': 'window blind',
    'playingfield': 'playing field',
}


def split_names(name: str) -> List[str]:
    """``'painting, picture'`` -> ``['painting', 'picture']`` (whitespace trimmed)."""
    return [n.strip() for n in name.split(',') if n.strip()]


def display_name(name: str) -> str:
    """A readable, prompt-friendly name: ``wall-other-merged`` -> ``wall``,
    ``wall-brick`` -> ``brick wall``, ``door-stuff`` -> ``door``."""
    raw = name.strip()
    if raw in _DISPLAY_OVERRIDES:
        return _DISPLAY_OVERRIDES[raw]
    if '-' not in raw or ' ' in raw:  # only COCO-style "a-b-merged" names are rewritten
        return raw
    words = canonical_class_name(raw).split(' ')
    if len(words) == 2 and raw.count('-') == 1 and ' ' not in raw:
        return f'{words[1]} {words[0]}'
    return ' '.join(words)


def build_synonyms(names: Sequence[str],
                   extra: Optional[Dict[str, Sequence[str]]] = None) -> Synonyms:
    """Synonym tuples (display name first) for a data set's class names.

    Each class keeps its display name; further names (comma-separated parts,
    the official name if it differs, :data:`EXTRA_SYNONYMS`, ``extra``) are
    dropped when another class already claims them, so the result always
    forms a valid :class:`~vitamin_dense.text.Vocabulary`.
    """
    table = dict(EXTRA_SYNONYMS)
    for key, values in (extra or {}).items():
        table[canonical_class_name(key)] = tuple(table.get(canonical_class_name(key), ())) + \
            tuple(values)
    primaries: List[str] = []
    claimed = set()  # normalised primaries so far (a set: 847-class lists stay linear)
    for name in names:
        parts = split_names(name) or [name.strip()]
        primary = display_name(parts[0])
        if normalize_name(primary) in claimed:
            primary = f'{primary} ({parts[1]})' if len(parts) > 1 else f'{primary} 2'
        primaries.append(primary)
        claimed.add(normalize_name(primary))
    result = []
    for name, primary in zip(names, primaries):
        parts = split_names(name) or [name.strip()]
        # raw COCO-style names ("door-stuff") stay in metainfo['classes'], not in prompts
        candidates = [display_name(p) for p in parts]
        for key in {canonical_class_name(p) for p in parts} | {canonical_class_name(primary)}:
            candidates += list(table.get(key, ()))
        synonyms = [primary]
        for cand in candidates:
            key = normalize_name(cand)
            if not key or key in claimed or ',' in cand:
                continue
            claimed.add(key)
            synonyms.append(cand)
        result.append(tuple(synonyms))
    return tuple(result)


def palette_for(num_classes: int, seed: int = 0) -> List[Tuple[int, int, int]]:
    """A fixed pseudo-random palette for data sets that define none."""
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(num_classes)]


# ---------------------------------------------------------------------------
# Class files of ADE20K-847 and Pascal Context 459
# ---------------------------------------------------------------------------
_NUMBERED = re.compile(r'^\s*(\d+)\s*[:\t]\s*(.+?)\s*$')


def read_class_file(path: str, dataset: str = 'data set', expected: Optional[int] = None
                    ) -> List[str]:
    """Class names from a text file, in label order.

    Accepted forms: ``"<id>: <name>"`` (or tab-separated) lines, ordered by id,
    as Pascal Context's ``labels.txt``; or one class per line (synonyms
    comma-separated, ``#`` comments), as our vocabulary files.
    """
    if not osp.isfile(path):
        raise DatasetFileError(f'{dataset}: missing class-name file {path}')
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = [ln.rstrip('\n') for ln in f]
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith('#')]
    numbered = [_NUMBERED.match(ln) for ln in lines]
    if lines and all(numbered):
        pairs = sorted((int(m.group(1)), m.group(2)) for m in numbered)
        ids = [i for i, _ in pairs]
        if ids != list(range(ids[0], ids[0] + len(ids))):
            raise DatasetError(f'{dataset}: class ids in {path} are not consecutive')
        names = [n for _, n in pairs]
    else:
        names = [ln.strip() for ln in lines]
    if not names:
        raise DatasetError(f'{dataset}: {path} names no class')
    if expected is not None and len(names) != expected:
        raise DatasetError(f'{dataset}: {path} names {len(names)} classes, expected {expected}')
    return names


# ---------------------------------------------------------------------------
# Names from mmdet / mmseg METAINFO
# ---------------------------------------------------------------------------
def coco_panoptic_meta() -> dict:
    from mmdet.datasets import CocoPanopticDataset
    return dict(CocoPanopticDataset.METAINFO)


def ade150_panoptic_meta() -> dict:
    from mmdet.datasets import ADE20KPanopticDataset
    return dict(ADE20KPanopticDataset.METAINFO)


def ade150_semantic_meta() -> dict:
    """mmseg's A-150 (label order of the official semantic annotations)."""
    from mmseg.datasets import ADE20KDataset
    meta = dict(ADE20KDataset.METAINFO)
    meta['classes'] = tuple(c.strip() for c in meta['classes'])
    return meta


def ade150_extra_synonyms() -> Dict[str, Tuple[str, ...]]:
    """mmdet's ADE20K panoptic names carry WordNet synonyms; key them by each name."""
    extra: Dict[str, Tuple[str, ...]] = {}
    for name in ade150_panoptic_meta()['classes']:
        parts = split_names(name)
        for part in parts:
            extra.setdefault(canonical_class_name(part), tuple(parts))
    return extra


def cityscapes_meta() -> dict:
    """19 classes: things (mmdet's Cityscapes instances) first, then stuff (mmseg order)."""
    from mmdet.datasets import CityscapesDataset as DetCityscapes
    from mmseg.datasets import CityscapesDataset as SegCityscapes
    things = tuple(DetCityscapes.METAINFO['classes'])
    seg_classes = tuple(SegCityscapes.METAINFO['classes'])
    seg_palette = dict(zip(seg_classes, SegCityscapes.METAINFO['palette']))
    stuff = tuple(c for c in seg_classes if c not in things)
    classes = things + stuff
    return dict(classes=classes, thing_classes=things, stuff_classes=stuff,
                palette=[tuple(seg_palette[c]) for c in classes])


def mapillary_meta() -> dict:
    """Mapillary Vistas v1.2's 65 classes (mmseg's names, without 'Unlabeled')."""
    from mmseg.datasets import MapillaryDataset_v1
    meta = MapillaryDataset_v1.METAINFO
    keep = [i for i, c in enumerate(meta['classes']) if c != 'Unlabeled']
    return dict(classes=tuple(meta['classes'][i] for i in keep),
                palette=[tuple(meta['palette'][i]) for i in keep])


def pc59_meta() -> dict:
    from mmseg.datasets import PascalContextDataset59
    return dict(PascalContextDataset59.METAINFO)


def voc21_meta() -> dict:
    from mmseg.datasets import PascalVOCDataset
    return dict(PascalVOCDataset.METAINFO)


def voc20_meta() -> dict:
    meta = voc21_meta()
    return dict(classes=tuple(meta['classes'][1:]), palette=list(meta['palette'][1:]))


# ---------------------------------------------------------------------------
# Built-in vocabularies: dataset:<name>
# ---------------------------------------------------------------------------
ADE847_CLASSES_ENV = 'VITAMIN_DENSE_ADE847_CLASSES'
PC459_CLASSES_ENV = 'VITAMIN_DENSE_PC459_CLASSES'
ADE847_CLASSES_DEFAULT = 'data/ADE20K_2021_17_01/ade847_classes.txt'
PC459_CLASSES_DEFAULT = 'data/VOCdevkit/VOC2010/labels.txt'


def _file_vocabulary(env: str, default: str, dataset: str, expected: int) -> Synonyms:
    path = os.environ.get(env, default)
    if not osp.isfile(path):
        raise VocabularyError(
            f'{dataset} class names come from the data set: missing {path} (set {env} to the '
            'file; see configs/_base_/datasets/ for the layout)')
    return build_synonyms(read_class_file(path, dataset, expected))


VOCABULARY_LOADERS = {
    'coco_panoptic': lambda: build_synonyms(coco_panoptic_meta()['classes']),
    'ade150': lambda: build_synonyms(ade150_semantic_meta()['classes'], ade150_extra_synonyms()),
    'ade847': lambda: _file_vocabulary(ADE847_CLASSES_ENV, ADE847_CLASSES_DEFAULT,
                                       'ADE20K-847', 847),
    'cityscapes': lambda: build_synonyms(cityscapes_meta()['classes']),
    'mapillary': lambda: build_synonyms(mapillary_meta()['classes']),
    'pc59': lambda: build_synonyms(pc59_meta()['classes']),
    'pc459': lambda: _file_vocabulary(PC459_CLASSES_ENV, PC459_CLASSES_DEFAULT,
                                      'Pascal Context 459', 459),
    'voc20': lambda: build_synonyms(voc20_meta()['classes']),
    'voc21': lambda: build_synonyms(voc21_meta()['classes']),
}

for _name, _loader in VOCABULARY_LOADERS.items():
    register_builtin_vocabulary(_name, _loader)
