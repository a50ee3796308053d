"""Class names and synonyms of the evaluation data sets, and their built-in vocabularies.

Two kinds of names per class:

* the data set's own name (``metainfo['classes']``), which annotation files
  and metrics use: from mmdet / mmseg ``METAINFO`` (COCO panoptic, ADE20K-150,
  Cityscapes, Mapillary Vistas, Pascal Context 59, Pascal VOC), or for
  ADE20K-847 and Pascal Context 459, which they lack, the first of our names
  (or a file of the data set, :func:`read_class_file`);
* the names a model prompts with (``metainfo['vocabulary']`` and
  ``dataset:NAME``): for every set FC-CLIP evaluates on, FC-CLIP's curated
  names and synonyms, the ones the ViTamin paper's Sliding FC-CLIP used, kept
  in ``vitamin_dense/datasets/vocabularies/NAME.txt`` (one class a line, in
  the data set's label order; :func:`fcclip_vocabulary`). They also decide
  which classes are "seen" in training (FC-CLIP's rule, ``text/splits.py``).

For class lists these files do not cover (a config's own ``classes``), the
synonyms are built as before: a class's own comma-separated names, a cleaned
display name for COCO's ``*-merged`` / ``*-stuff`` / ``*-other`` names, and a
modest table of our own (:data:`EXTRA_SYNONYMS`), a synonym that another class
already uses dropped.
"""
from __future__ import annotations

import functools
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import VocabularyError
from ..text.splits import canonical_class_name
from ..text.vocabulary import normalize_name, read_vocabulary_file, register_builtin_vocabulary
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
# FC-CLIP's names: vocabularies/<name>.txt, and dataset:<name>
# ---------------------------------------------------------------------------
VOCABULARY_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'vocabularies')
FCCLIP_SETS = ('coco_panoptic', 'ade150', 'ade847', 'cityscapes', 'mapillary', 'pc59', 'pc459',
               'voc21')


@functools.lru_cache(maxsize=None)
def fcclip_vocabulary(name: str) -> Synonyms:
    """FC-CLIP's names of data set ``name`` (one synonym tuple per class, label order).

    ``voc20`` is ``voc21`` without ``background``.
    """
    if name == 'voc20':
        return fcclip_vocabulary('voc21')[1:]
    if name not in FCCLIP_SETS:
        raise KeyError(f'no FC-CLIP vocabulary for {name!r}; known: {", ".join(FCCLIP_SETS)}')
    return read_vocabulary_file(osp.join(VOCABULARY_DIR, f'{name}.txt')).classes


# ADE20K-150's 100 things (classes with instance annotations) by official label index
# (0-based); the other 50 are stuff. mmdet's ADE20K panoptic class list is these
# things, then the stuff classes, each in official order, under its own names.
ADE150_THINGS = (
    7, 8, 10, 12, 14, 15, 18, 19, 20, 22, 23, 24, 27, 30, 31, 32, 33, 35, 36, 37, 38, 39, 41,
    42, 43, 44, 45, 47, 49, 50, 53, 55, 56, 57, 58, 62, 64, 65, 66, 67, 69, 70, 71, 72, 73, 74,
    75, 76, 78, 80, 81, 82, 83, 85, 86, 87, 88, 89, 90, 92, 93, 95, 97, 98, 102, 103, 104, 107,
    108, 110, 111, 112, 115, 116, 118, 119, 120, 121, 123, 124, 125, 126, 127, 129, 130, 132,
    133, 134, 135, 136, 137, 138, 139, 142, 143, 144, 146, 147, 148, 149)


def ade150_panoptic_order() -> List[int]:
    """Official index of each class of mmdet's ADE20K panoptic list (things first)."""
    things = set(ADE150_THINGS)
    return [i for i in range(150) if i in things] + [i for i in range(150) if i not in things]


def _official_classes(name: str) -> List[Tuple[Sequence[str], Sequence[int]]]:
    """The data set's own class-name lists, each with the row of its file every name has."""
    def in_order(names):
        return names, range(len(names))
    if name == 'coco_panoptic':
        return [in_order(coco_panoptic_meta()['classes'])]
    if name == 'ade150':  # mmseg's semantic names; mmdet's panoptic ones, things first
        return [in_order(ade150_semantic_meta()['classes']),
                (ade150_panoptic_meta()['classes'], ade150_panoptic_order())]
    if name == 'cityscapes':
        from mmseg.datasets import CityscapesDataset
        return [in_order(CityscapesDataset.METAINFO['classes'])]
    if name == 'mapillary':
        return [in_order(mapillary_meta()['classes'])]
    if name == 'pc59':
        return [in_order(pc59_meta()['classes'])]
    if name in ('voc21', 'voc20'):
        return [in_order((voc21_meta() if name == 'voc21' else voc20_meta())['classes'])]
    return []


@functools.lru_cache(maxsize=None)
def _names_by_class(name: str) -> Dict[str, Tuple[str, ...]]:
    rows = fcclip_vocabulary(name)
    table: Dict[str, Tuple[str, ...]] = {}
    for official, index in _official_classes(name):
        if len(official) != len(rows):
            raise VocabularyError(f'{name}: {len(official)} classes in mmdet / mmseg, '
                                  f'{len(rows)} in vocabularies/{name}.txt')
        for cls_name, i in zip(official, index):
            table.setdefault(normalize_name(cls_name), rows[i])
    return table


def vocabulary_for(name: str, classes: Sequence[str]) -> Optional[Synonyms]:
    """FC-CLIP's names for a data set's ``classes`` (its own names, any order),
    or None when one of them is not a class of that data set."""
    table = _names_by_class(name)
    keys = [normalize_name(str(c)) for c in classes]
    if not keys or any(k not in table for k in keys):
        return None
    return tuple(table[k] for k in keys)


def merge_class_metainfo(default: dict, metainfo: Optional[dict], fcclip_set: str,
                         classes: Sequence[str],
                         extra_synonyms: Optional[Dict[str, Sequence[str]]] = None) -> dict:
    """A data set's metainfo: ``default`` updated with a config's ``metainfo``, plus the
    names a model prompts with: FC-CLIP's (``vocabulary``) when every class is one of
    data set ``fcclip_set``'s, else ``synonyms`` built from the class names (each
    unless given). ``classes``: the class list when neither gives one."""
    meta = dict(default)
    if metainfo and 'classes' in metainfo and 'vocabulary' not in metainfo:
        meta.pop('vocabulary', None)  # the default names are for the default classes
    meta.update(metainfo or {})
    classes = [str(c).strip() for c in (meta.get('classes') or classes)]
    if 'vocabulary' not in meta and fcclip_set:
        found = vocabulary_for(fcclip_set, classes)
        if found is not None:
            meta['vocabulary'] = found
    if 'synonyms' not in meta and 'vocabulary' not in meta:
        meta['synonyms'] = build_synonyms(classes, extra_synonyms)
    return meta


def cityscapes_things_first() -> Synonyms:
    """FC-CLIP's Cityscapes names in our label order: the 8 things (train ids 11..18,
    person ... bicycle, in that order) first, then the 11 stuff classes (as
    :func:`cityscapes_meta`)."""
    rows = fcclip_vocabulary('cityscapes')
    return rows[11:] + rows[:11]


# dataset:<name> follows the label order of our data set classes (Cityscapes:
# things first, as the panoptic data set; the others: the data set's order).
# No OpenMMLab import: the files alone.
VOCABULARY_LOADERS = {
    'coco_panoptic': lambda: fcclip_vocabulary('coco_panoptic'),
    'ade150': lambda: fcclip_vocabulary('ade150'),
    'ade847': lambda: fcclip_vocabulary('ade847'),
    'cityscapes': cityscapes_things_first,
    'mapillary': lambda: fcclip_vocabulary('mapillary'),
    'pc59': lambda: fcclip_vocabulary('pc59'),
    'pc459': lambda: fcclip_vocabulary('pc459'),
    'voc20': lambda: fcclip_vocabulary('voc20'),
    'voc21': lambda: fcclip_vocabulary('voc21'),
}

for _name, _loader in VOCABULARY_LOADERS.items():
    register_builtin_vocabulary(_name, _loader)
