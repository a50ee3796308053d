"""Class splits of the open-vocabulary detection benchmarks (OV-COCO, OV-LVIS).

OV-COCO keeps 65 of the 80 COCO classes: 48 *base* classes whose boxes are
used in training and 17 *novel* classes that are only seen at test time. The
split is the one of Bansal et al., "Zero-Shot Object Detection" (ECCV 2018),
as used by OVR-CNN (Zareian et al., CVPR 2021), ViLD, F-VLM and F-ViT. The
15 COCO classes outside the split (traffic light, fire hydrant, ...) are not
part of the benchmark.

OV-LVIS uses LVIS v1 with its own frequency groups: categories annotated in
fewer than 10 training images are *rare* (``frequency == 'r'`` in the LVIS
json) and play the role of novel classes; common and frequent categories are
the base classes. The groups are read from the annotation file itself, never
from a list copied here.

Class names of COCO and LVIS come from mmdet's data set classes at run time.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Sequence, Tuple

from ..text.vocabulary import normalize_name, register_builtin_vocabulary

# Novel classes of OV-COCO (Bansal et al., ECCV 2018; OVR-CNN, CVPR 2021).
OV_COCO_NOVEL_CLASSES: Tuple[str, ...] = (
    'airplane', 'bus', 'cat', 'dog', 'cow', 'elephant', 'umbrella', 'tie', 'snowboard',
    'skateboard', 'cup', 'knife', 'cake', 'couch', 'keyboard', 'sink', 'scissors')

# Base classes of OV-COCO (same papers).
OV_COCO_BASE_CLASSES: Tuple[str, ...] = (
    'person', 'bicycle', 'car', 'motorcycle', 'train', 'truck', 'boat', 'bench', 'bird',
    'horse', 'sheep', 'bear', 'zebra', 'giraffe', 'backpack', 'handbag', 'suitcase',
    'frisbee', 'skis', 'kite', 'surfboard', 'bottle', 'fork', 'spoon', 'bowl', 'banana',
    'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'pizza', 'donut', 'chair', 'bed',
    'toilet', 'tv', 'laptop', 'mouse', 'remote', 'microwave', 'oven', 'toaster',
    'refrigerator', 'book', 'clock', 'vase', 'toothbrush')

# LVIS frequency groups that count as novel in OV-LVIS (ViLD, F-VLM, F-ViT, OWL-ViT).
LVIS_NOVEL_FREQUENCIES: Tuple[str, ...] = ('r',)
LVIS_FREQUENCIES: Tuple[str, ...] = ('r', 'c', 'f')

CLASS_SUBSETS: Tuple[str, ...] = ('all', 'base', 'novel')


def coco_classes() -> Tuple[str, ...]:
    """The 80 COCO detection classes, in COCO order (from mmdet's CocoDataset)."""
    from mmdet.datasets import CocoDataset
    return tuple(CocoDataset.METAINFO['classes'])


def coco_palette() -> List[Tuple[int, int, int]]:
    """mmdet's colour of each COCO class, in :func:`coco_classes` order."""
    from mmdet.datasets import CocoDataset
    return [tuple(c) for c in CocoDataset.METAINFO['palette']]


def lvis_v1_classes() -> Tuple[str, ...]:
    """The 1203 LVIS v1 category names, in category-id order (from mmdet's LVISV1Dataset)."""
    from mmdet.datasets import LVISV1Dataset
    return tuple(LVISV1Dataset.METAINFO['classes'])


def ov_coco_classes() -> Tuple[str, ...]:
    """The 65 OV-COCO classes (48 base + 17 novel) in COCO order."""
    keep = set(OV_COCO_BASE_CLASSES) | set(OV_COCO_NOVEL_CLASSES)
    classes = tuple(name for name in coco_classes() if name in keep)
    if len(classes) != len(keep):  # mmdet renamed a COCO class: fail loudly, not silently
        missing = sorted(keep - set(classes))
        raise RuntimeError(f'OV-COCO classes missing from mmdet CocoDataset: {missing}')
    return classes


def ov_coco_palette() -> List[Tuple[int, int, int]]:
    """mmdet's COCO colours of the 65 OV-COCO classes."""
    colours = dict(zip(coco_classes(), coco_palette()))
    return [colours[name] for name in ov_coco_classes()]


def random_palette(num_classes: int) -> List[Tuple[int, int, int]]:
    """A fixed pseudo-random palette (mmdet's seeded ``'random'`` palette)."""
    from mmdet.visualization.palette import get_palette
    return [tuple(int(v) for v in c) for c in get_palette('random', num_classes)]


def dedupe_synonyms(classes: Sequence[Sequence[str]]) -> Tuple[Tuple[str, ...], ...]:
    """Drop synonyms that would make a :class:`~vitamin_dense.text.Vocabulary` ambiguous.

    Each class keeps its display name (first entry). A further synonym is
    dropped when, after normalisation, it equals the display name of another
    class or a synonym already kept earlier (LVIS lists a few such names
    under two categories).
    """
    display = {normalize_name(syn[0]) for syn in classes}
    seen = set()
    out = []
    for synonyms in classes:
        name = synonyms[0]
        key = normalize_name(name)
        kept = [name]
        seen.add(key)
        for syn in synonyms[1:]:
            skey = normalize_name(syn)
            if not skey or skey in seen or skey in display:
                continue
            seen.add(skey)
            kept.append(syn)
        out.append(tuple(kept))
    return tuple(out)


def split_metainfo(classes: Sequence[str], is_novel: Sequence[bool]) -> Dict[str, tuple]:
    """Metainfo fields that describe a base / novel split of ``classes``.

    Returns ``base_classes``, ``novel_classes`` (names), ``base_labels``,
    ``novel_labels`` (indices into ``classes``) and ``is_novel`` (one bool per
    class). Detectors train on base labels only; metrics read the split.
    """
    if len(classes) != len(is_novel):
        raise ValueError('is_novel must have one entry per class')
    novel = tuple(bool(v) for v in is_novel)
    return dict(
        is_novel=novel,
        base_classes=tuple(c for c, n in zip(classes, novel) if not n),
        novel_classes=tuple(c for c, n in zip(classes, novel) if n),
        base_labels=tuple(i for i, n in enumerate(novel) if not n),
        novel_labels=tuple(i for i, n in enumerate(novel) if n),
    )


def labels_in_subset(is_novel: Sequence[bool], subset: str) -> List[int]:
    """Label indices whose annotations a data set keeps for ``subset``."""
    if subset == 'all':
        return list(range(len(is_novel)))
    want_novel = subset == 'novel'
    return [i for i, n in enumerate(is_novel) if bool(n) == want_novel]


def names_to_mask(classes: Sequence[str], names: Iterable[str]) -> List[bool]:
    """One bool per class: is its (normalised) name among ``names``."""
    wanted = {normalize_name(n) for n in names}
    return [normalize_name(c) in wanted for c in classes]


# dataset:NAME vocabularies (registered here, without mmdet: it is imported when one is used)
register_builtin_vocabulary('coco', lambda: list(coco_classes()))
register_builtin_vocabulary('ov_coco', lambda: list(ov_coco_classes()))
register_builtin_vocabulary('ov_coco_base', lambda: list(OV_COCO_BASE_CLASSES))
register_builtin_vocabulary('ov_coco_novel', lambda: list(OV_COCO_NOVEL_CLASSES))
register_builtin_vocabulary('lvis', lambda: list(lvis_v1_classes()))
