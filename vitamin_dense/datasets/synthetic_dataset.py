"""mmdet / mmseg data set classes over the synthetic data, generated on first use.

``SyntheticPanopticDataset`` (mmdet ``CocoPanopticDataset``: panoptic training and
PQ), ``SyntheticDetectionDataset`` (mmdet ``CocoDataset``: boxes and instance
masks) and ``SyntheticSemanticDataset`` (mmseg ``BaseSegDataset``: mIoU) take a
``split`` and a ``generator`` dict (the fields of
:class:`~vitamin_dense.datasets.synthetic.SyntheticSpec`). With ``generate=True``
(default) the split is written under ``data_root`` when it is absent or was made
with other parameters; generation is deterministic, so every rank and worker
sees identical files (a file lock makes sure only one process writes).
"""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmdet.datasets import CocoDataset, CocoPanopticDataset
from mmseg.datasets import BaseSegDataset

from ..registry import DATASETS
from .checks import require_paths
from .synthetic import SyntheticSpec, ensure_synthetic, split_paths, synthetic_metainfo

SYNTHETIC_LAYOUT = ('images/<split>/*.jpg, annotations/panoptic_<split>.json + '
                    'panoptic_<split>/*.png, annotations/instances_<split>.json, '
                    'annotations/semantic_<split>/*.png (make it with tools/make_synthetic.py '
                    'or generate=True)')


def _prepare(data_root: str, split: str, generator: Optional[dict], generate: bool,
             name: str) -> SyntheticSpec:
    spec = SyntheticSpec(**(generator or {}))
    if generate:
        ensure_synthetic(data_root, split, spec)
    else:
        rel = [osp.relpath(p, data_root) for p in split_paths(data_root, split).values()]
        require_paths(name, data_root, rel, SYNTHETIC_LAYOUT)
    return spec


def _merge_metainfo(spec: SyntheticSpec, metainfo: Optional[dict], things_only: bool) -> dict:
    meta = synthetic_metainfo(spec)
    if things_only:
        n = len(meta['thing_classes'])
        meta = dict(classes=meta['thing_classes'], synonyms=meta['synonyms'][:n],
                    palette=meta['palette'][:n])
    meta.update(metainfo or {})
    return meta


@DATASETS.register_module()
class SyntheticPanopticDataset(CocoPanopticDataset):
    """Synthetic shapes in COCO-panoptic form (mmdet's panoptic pipeline and metric).

    Args:
        data_root: where the data lives / is generated.
        split: split name (``'train'``, ``'val'``...); names the files.
        generator: :class:`SyntheticSpec` fields (num_images, image_size, seed,
            holdout...). The same dict must be used wherever the split is read.
        generate: write the split when absent (else a missing file is an error).
        Other arguments as mmdet's ``CocoPanopticDataset``; ``ann_file`` and
        ``data_prefix`` default to the split's files.
    """

    GENERATES_DATA = True  # files are written on first use (generate=True)

    def __init__(self, data_root: str = 'data/synthetic', split: str = 'train',
                 generator: Optional[dict] = None, generate: bool = True, ann_file: str = '',
                 data_prefix: Optional[dict] = None, metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        spec = _prepare(data_root, split, generator, generate, 'synthetic panoptic')
        self.split = split
        self.spec = spec
        super().__init__(
            ann_file=ann_file or f'annotations/panoptic_{split}.json',
            data_root=data_root,
            data_prefix=data_prefix or dict(img=f'images/{split}/',
                                            seg=f'annotations/panoptic_{split}/'),
            metainfo=_merge_metainfo(spec, metainfo, things_only=False),
            **kwargs)


@DATASETS.register_module()
class SyntheticDetectionDataset(CocoDataset):
    """Synthetic shapes in COCO-instances form (things only: boxes + RLE masks)."""

    GENERATES_DATA = True  # files are written on first use (generate=True)

    def __init__(self, data_root: str = 'data/synthetic', split: str = 'train',
                 generator: Optional[dict] = None, generate: bool = True, ann_file: str = '',
                 data_prefix: Optional[dict] = None, metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        spec = _prepare(data_root, split, generator, generate, 'synthetic detection')
        self.split = split
        self.spec = spec
        super().__init__(
            ann_file=ann_file or f'annotations/instances_{split}.json',
            data_root=data_root,
            data_prefix=data_prefix or dict(img=f'images/{split}/'),
            metainfo=_merge_metainfo(spec, metainfo, things_only=True),
            **kwargs)


@DATASETS.register_module()
class SyntheticSemanticDataset(BaseSegDataset):
    """Synthetic shapes as semantic maps (mmseg's pipeline and IoUMetric).

    Labels are things first, then stuff, 255 = void (the panoptic split's order).
    """

    GENERATES_DATA = True  # files are written on first use (generate=True)

    def __init__(self, data_root: str = 'data/synthetic', split: str = 'train',
                 generator: Optional[dict] = None, generate: bool = True,
                 data_prefix: Optional[dict] = None, metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        spec = _prepare(data_root, split, generator, generate, 'synthetic semantic')
        self.split = split
        self.spec = spec
        kwargs.setdefault('img_suffix', f'.{spec.image_ext}')
        kwargs.setdefault('seg_map_suffix', '.png')
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix or dict(img_path=f'images/{split}',
                                            seg_map_path=f'annotations/semantic_{split}'),
            metainfo=_merge_metainfo(spec, metainfo, things_only=False),
            **kwargs)
