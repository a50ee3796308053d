"""COCO box / mask AP with seen / unseen class splits, over mmdet's ``CocoMetric``
(pycocotools' ``COCOeval``).

Predictions are ``pred_instances`` (``bboxes``, ``masks``, ``labels``, ``scores``)
with labels over ``dataset_meta['classes']``. Labels are mapped to the
annotation file's categories by name (not by position), and labels without a
category there (stuff classes of a panoptic data set) are dropped, so a
panoptic segmentor is scored on the things of an instances file.

When the data set evaluates a subset of the annotation file's images (e.g.
``indices=500``), only those images are scored.

The seen / unseen numbers rerun ``COCOeval`` with ``params.catIds`` restricted
to each subset, which averages the per-category precision over the subset.
"""
from __future__ import annotations

import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmdet.evaluation.metrics import CocoMetric
from mmengine.logging import MMLogger, print_log

from ..datasets.errors import DatasetError, DatasetFileError
from ..registry import METRICS
from ..text.vocabulary import VocabSpec
from .seen_split import resolve_seen_flags, split_indices


@METRICS.register_module()
class OpenVocabCocoMetric(CocoMetric):
    """mmdet ``CocoMetric`` (``'bbox'`` and / or ``'segm'``) plus seen / unseen AP.

    Args:
        ann_file: COCO instances JSON of the evaluated split (recommended; without
            it the ground truth comes from the samples' ``instances``).
        metric: ``'segm'`` (default), ``'bbox'`` or both.
        train_vocabulary: classes the model was trained on (any
            ``parse_vocabulary`` spec); adds ``<metric>_mAP_seen`` /
            ``<metric>_mAP_unseen`` (and the other items) when given.
        Other arguments as mmdet's ``CocoMetric``.
    """

    default_prefix: Optional[str] = 'coco'

    def __init__(self, ann_file: Optional[str] = None, metric: Union[str, List[str]] = 'segm',
                 train_vocabulary: Optional[VocabSpec] = None, **kwargs) -> None:
        if ann_file and not osp.isfile(ann_file):
            raise DatasetFileError(f'instance metric: missing annotation file {ann_file}')
        super().__init__(ann_file=ann_file, metric=metric, **kwargs)
        self.ann_file = ann_file
        self.train_vocabulary = train_vocabulary
        self._label_to_cat: Optional[List[Optional[int]]] = None

    def _name_ordered_categories(self) -> List[Optional[int]]:
        """Category id of each label, matched by name (None: not in the file)."""
        id_of = {cat['name']: cid for cid, cat in self._coco_api.cats.items()}
        return [id_of.get(name) for name in self.dataset_meta['classes']]

    def _evaluated_images(self, results: list) -> List[int]:
        """The ann_file's images that were evaluated: all of them, or the subset a data set
        took (``indices``), so that images never run are not scored as missed."""
        all_ids = self._coco_api.get_img_ids()
        evaluated = {pred['img_id'] for _, pred in results}
        if len(evaluated) >= len(all_ids):
            return all_ids
        print_log(f'scoring the {len(evaluated)} evaluated images of the {len(all_ids)} in '
                  f'{self.ann_file}', logger=MMLogger.get_current_instance())
        return [i for i in all_ids if i in evaluated]

    def results2json(self, results: Sequence[dict], outfile_prefix: str) -> dict:
        mapping = self._label_to_cat if self._label_to_cat is not None else list(self.cat_ids)
        kept = [_keep_labels(r, mapping) for r in results]
        evaluated = self.cat_ids
        self.cat_ids = mapping
        try:
            return super().results2json(kept, outfile_prefix)
        finally:
            self.cat_ids = evaluated

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if self._coco_api is not None and self._label_to_cat is None:
            self._label_to_cat = self._name_ordered_categories()
            if all(c is None for c in self._label_to_cat):
                raise DatasetError('instance metric: no class of the data set is a category of '
                                   'the annotation file (check ann_file)')
        if self._label_to_cat is not None:
            self.cat_ids = [c for c in self._label_to_cat if c is not None]
        if self._coco_api is not None:
            self.img_ids = self._evaluated_images(results)
        metrics = super().compute_metrics(results)
        if self._label_to_cat is None:  # categories came from the samples, in label order
            self._label_to_cat = list(self.cat_ids)
        all_ids = list(self.cat_ids)
        flags = resolve_seen_flags(self.dataset_meta, self.train_vocabulary)
        logger = MMLogger.get_current_instance()
        for split, indices in split_indices(flags):
            ids = [self._label_to_cat[i] for i in indices
                   if i < len(self._label_to_cat) and self._label_to_cat[i] is not None]
            if not ids:
                continue
            print_log(f'Evaluating the {split} classes ({len(ids)} categories)...', logger=logger)
            self.cat_ids = ids
            try:
                sub = super().compute_metrics(results)
            finally:
                self.cat_ids = all_ids
            for key, value in sub.items():
                if not key.endswith('_precision'):  # per-class rows repeat the full table
                    metrics[f'{key}_{split}'] = value
        return metrics


def _keep_labels(result: dict, mapping: Sequence[Optional[int]]) -> dict:
    """A prediction dict without the detections whose label has no category."""
    labels = np.asarray(result['labels'])
    keep = np.array([0 <= int(lb) < len(mapping) and mapping[int(lb)] is not None
                     for lb in labels], dtype=bool)
    if keep.all():
        return result
    out = dict(result)
    idx = np.nonzero(keep)[0]
    for key in ('bboxes', 'scores', 'labels', 'mask_scores'):
        if key in out:
            out[key] = np.asarray(out[key])[idx]
    if 'masks' in out:
        out['masks'] = [out['masks'][i] for i in idx]
    return out
