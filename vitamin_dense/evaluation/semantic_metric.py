"""mIoU (and mmseg's other semantic metrics) with seen / unseen class splits,
over mmseg's ``IoUMetric``.

Reads ``pred_sem_seg`` and the ground truth from either layout: mmseg's
``SegDataSample`` (``gt_sem_seg.data``) or mmdet's panoptic ``DetDataSample``
(``gt_sem_seg.sem_seg``), so one segmentor feeds both kinds of data set. When a
sample has no ``pred_sem_seg`` but has ``pred_panoptic_seg``, the semantic map
is its labels (``sem_seg % INSTANCE_OFFSET``, void -> ignore).

The seen / unseen numbers average mmseg's per-class IoU (NaN for classes absent
from both prediction and ground truth, as mmseg) over the two subsets.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import MMLogger, print_log
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmseg.evaluation import IoUMetric

from ..datasets.errors import DatasetError
from ..registry import METRICS
from ..text.vocabulary import VocabSpec
from .seen_split import resolve_seen_flags, split_indices



def _pixel_data(field) -> Optional[torch.Tensor]:
    if field is None:
        return None
    for key in ('data', 'sem_seg'):
        if key in field:
            return field[key]
    return None


@METRICS.register_module()
class OpenVocabIoUMetric(IoUMetric):
    """mmseg ``IoUMetric`` reading mmseg or mmdet samples, plus seen / unseen mIoU.

    Args:
        train_vocabulary: classes the model was trained on (any
            ``parse_vocabulary`` spec); adds ``mIoU_seen`` / ``mIoU_unseen``
            (and the same for the other requested metrics) when given.
        ignore_index: label of unlabelled pixels (255; 65535 for the uint16 sets).
        Other arguments as mmseg's ``IoUMetric`` (``iou_metrics``, ``nan_to_num``...).
    """

    default_prefix: Optional[str] = 'sem_seg'

    def __init__(self, train_vocabulary: Optional[VocabSpec] = None, ignore_index: int = 255,
                 **kwargs) -> None:
        super().__init__(ignore_index=ignore_index, **kwargs)
        self.train_vocabulary = train_vocabulary

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        num_classes = len(self.dataset_meta['classes'])
        for sample in data_samples:
            pred = _pixel_data(sample.get('pred_sem_seg'))
            if pred is None:
                pan = _pixel_data(sample.get('pred_panoptic_seg'))
                if pan is None:
                    raise DatasetError('semantic metric: the model output has neither '
                                       'pred_sem_seg nor pred_panoptic_seg')
                pred = pan % INSTANCE_OFFSET
                pred = torch.where(pred >= num_classes, torch.full_like(pred, self.ignore_index),
                                   pred)
            pred = pred.squeeze()
            normalised = dict(pred_sem_seg=dict(data=pred), img_path=sample.get('img_path'),
                              reduce_zero_label=sample.get('reduce_zero_label', False))
            gt = _pixel_data(sample.get('gt_sem_seg'))
            if gt is None and not self.format_only:
                raise DatasetError('semantic metric: the data sample has no gt_sem_seg '
                                   '(load the annotations in the test pipeline)')
            if gt is not None:
                gt = gt.squeeze().to(pred)
                if gt.shape != pred.shape:
                    raise DatasetError(f'semantic metric: prediction {tuple(pred.shape)} and '
                                       f'ground truth {tuple(gt.shape)} differ in size')
                normalised['gt_sem_seg'] = dict(data=gt)
            # mmseg's own process: IoU statistics, or the PNGs of format_only / output_dir
            super().process(data_batch, [normalised])

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        flags = resolve_seen_flags(self.dataset_meta, self.train_vocabulary)
        if flags is None or self.format_only:
            return metrics
        totals = [sum(parts) for parts in zip(*results)]
        per_class = self.total_area_to_metrics(*totals, self.metrics, self.nan_to_num, self.beta)
        per_class.pop('aAcc', None)
        rows = []
        for split, indices in split_indices(flags):
            for key, values in per_class.items():
                values = np.asarray(values, dtype=np.float64)[indices]
                mean = float(np.nanmean(values)) if np.isfinite(values).any() else float('nan')
                metrics[f'm{key}_{split}'] = round(mean * 100, 2)
            rows.append(f"{split}: {len(indices)} classes mIoU {metrics.get(f'mIoU_{split}')}")
        print_log('Semantic seen / unseen classes: ' + '; '.join(rows),
                  logger=MMLogger.get_current_instance())
        return metrics
