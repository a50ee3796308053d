"""OV-COCO metric: COCO AP through pycocotools, reported on the novel, base and all splits.

The OV-COCO benchmark's headline number is box AP at IoU 0.5 over the 17
novel classes (``bbox_AP50_novel``); base (48 classes) and all (65) are
reported next to it. Per-class AP is independent of the other classes in
COCOeval, so one evaluation over all classes, sliced by category, gives the
same numbers as separate evaluations restricted to each split (the tests
check exactly that against pycocotools).

Predictions are read from each data sample's ``pred_instances`` (``bboxes``
in original-image ``xyxy`` pixels, ``scores``, ``labels`` indexing
``dataset_meta['classes']``, optional ``masks``), as mmdet's ``CocoMetric``
does. Keys produced (prefix ``ov_coco/``), for ``bbox`` and, when evaluated,
``segm``::

    {m}_AP50_novel {m}_AP50_base {m}_AP50_all   AP at IoU 0.5 on each split
    {m}_mAP_novel  {m}_mAP_base  {m}_mAP_all    AP at IoU 0.50:0.95 on each split
    {m}_mAP {m}_mAP_50 {m}_mAP_75 {m}_mAP_s {m}_mAP_m {m}_mAP_l {m}_AR@100
                                               COCOeval's summary over all evaluated classes

A split without any ground truth in the evaluated images reports -1
(pycocotools' convention).

mmdet 3.3 has a metric of the same name (``mmdet.OVCocoMetric``, keys
``novel_ap50`` / ``base_ap50``, split names from ``dataset_meta``); it is not
replaced. Configs with ``default_scope='vitamin_dense'`` get this one; a
config in mmdet's scope names it ``type='vitamin_dense.OVCocoMetric'``.
Differences: the split also works without ``base_classes`` in the metainfo,
categories are matched by name (not the order of the json), only the images
of the test data set are evaluated (a subset run is not penalised for the
other images of the json), AP uses COCO's 100 detections per image, and
values are not rounded.
"""
from __future__ import annotations

import contextlib
import io
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmdet.datasets.api_wrappers import COCO, COCOeval
from mmdet.evaluation.metrics import CocoMetric
from mmengine.fileio import load
from mmengine.logging import MMLogger

from ..datasets.ov_coco import OV_COCO_LAYOUT
from ..datasets.ov_detection_base import DatasetError, annotation_error, require_file
from ..datasets.ov_splits import OV_COCO_BASE_CLASSES, OV_COCO_NOVEL_CLASSES, names_to_mask
from ..errors import ConfigError
from ..registry import METRICS
from ..text.vocabulary import normalize_name
from .ov_split_utils import (results_prefix, SPLITS, check_labels, check_metrics, format_table, mean_valid,
                             metrics_for, processed_image_ids, split_labels)

_COCO_STATS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
_MAX_DETS = (1, 10, 100)


@METRICS.register_module()
class OVCocoMetric(CocoMetric):
    """COCO-format detection / instance-segmentation AP with base / novel splits.

    Args:
        ann_file: COCO-format ground truth of the test set (the stock
            ``instances_val2017.json`` or OVR-CNN's ``instances_val2017_all_2.json``).
            ``None`` converts the ground truth carried by the data samples.
        metric: ``'bbox'``, ``'segm'`` or a list of them; ``None`` (default)
            evaluates ``bbox``, plus ``segm`` when the predictions carry masks.
        novel_classes / base_classes: override the split; by default it comes
            from the data set's metainfo (``is_novel``), else the OV-COCO
            17 / 48 classes.
        classwise: also log (and return) per-class AP50 and AP.
        iou_thrs: IoU thresholds (must include 0.5); default 0.50:0.05:0.95.
        format_only / outfile_prefix / backend_args / collect_device /
            prefix: as mmdet's ``CocoMetric``.
    """

    default_prefix: Optional[str] = 'ov_coco'

    def __init__(self, ann_file: Optional[str] = None,
                 metric: Union[None, str, Sequence[str]] = None,
                 novel_classes: Optional[Sequence[str]] = None,
                 base_classes: Optional[Sequence[str]] = None,
                 classwise: bool = False,
                 iou_thrs: Optional[Sequence[float]] = None,
                 format_only: bool = False,
                 outfile_prefix: Optional[str] = None,
                 backend_args: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        self.requested = check_metrics(metric)
        if ann_file is not None:
            require_file(ann_file, 'OV-COCO evaluation annotation file', OV_COCO_LAYOUT,
                         backend_args)
        try:
            super().__init__(ann_file=ann_file, metric=list(self.requested or ['bbox']),
                             classwise=classwise, proposal_nums=_MAX_DETS, iou_thrs=iou_thrs,
                             format_only=format_only, outfile_prefix=outfile_prefix,
                             backend_args=backend_args, collect_device=collect_device,
                             prefix=prefix)
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise annotation_error(ann_file, 'COCO instances', exc) from exc
        self.iou_thrs = np.asarray(self.iou_thrs, dtype=np.float64).reshape(-1)
        if not np.isclose(self.iou_thrs, 0.5).any():
            raise ConfigError('iou_thrs must include 0.5: OV-COCO reports AP50')
        self.ann_file = ann_file
        self.novel_classes = tuple(novel_classes) if novel_classes is not None else None
        self.base_classes = tuple(base_classes) if base_classes is not None else None

    # ------------------------------------------------------------------ helpers
    def _classes(self, coco_gt: COCO) -> List[str]:
        if self.dataset_meta and self.dataset_meta.get('classes'):
            return list(self.dataset_meta['classes'])
        MMLogger.get_current_instance().warning(
            'OVCocoMetric: no dataset_meta; evaluating the categories of the annotation file')
        return [c['name'] for c in coco_gt.dataset['categories']]

    def _category_ids(self, coco_gt: COCO, classes: Sequence[str], source: str) -> List[int]:
        name_to_id = {normalize_name(c['name']): c['id'] for c in coco_gt.dataset['categories']}
        missing = [c for c in classes if normalize_name(c) not in name_to_id]
        if missing:
            raise DatasetError(f'{source} has no category {missing[:5]}: the evaluator needs '
                               'the ground truth of every class of the data set')
        return [name_to_id[normalize_name(c)] for c in classes]

    def _splits(self, classes: Sequence[str]) -> Dict[str, List[int]]:
        return split_labels(classes, self.dataset_meta, self.novel_classes, self.base_classes,
                            default_novel=names_to_mask(classes, OV_COCO_NOVEL_CLASSES),
                            default_base=names_to_mask(classes, OV_COCO_BASE_CLASSES))

    # ------------------------------------------------------------------ evaluation
    def compute_metrics(self, results: list) -> Dict[str, float]:
        gts, preds = zip(*results)
        with results_prefix(self.outfile_prefix) as outfile_prefix:
            return self._compute(gts, preds, outfile_prefix, MMLogger.get_current_instance())

    def _compute(self, gts, preds, outfile_prefix: str, logger) -> Dict[str, float]:
        coco_gt = self._coco_api
        source = self.ann_file
        if coco_gt is None:  # ground truth converted from the data samples, for this run only
            with contextlib.redirect_stdout(io.StringIO()):
                coco_gt = COCO(self.gt_to_coco_json(gt_dicts=gts, outfile_prefix=outfile_prefix))
            source = 'the converted ground truth'
        classes = self._classes(coco_gt)
        self.cat_ids = self._category_ids(coco_gt, classes, source)
        img_ids = processed_image_ids(gts, coco_gt.imgs, source)
        check_labels(preds, len(classes))
        n_gt_images = len(coco_gt.imgs)
        if len(img_ids) < n_gt_images:
            logger.info(f'OVCocoMetric: evaluating {len(img_ids)} of the {n_gt_images} images '
                        'of the annotation file (the images of the test data set)')
        result_files = self.results2json(preds, outfile_prefix)
        if self.format_only:
            logger.info(f'results are saved in {osp.dirname(outfile_prefix)}')
            return OrderedDict()

        splits = self._splits(classes)
        eval_results: Dict[str, float] = OrderedDict()
        for metric in metrics_for(self.requested, preds, 'OVCocoMetric'):
            coco_eval = self._evaluate(coco_gt, result_files, metric, img_ids, logger)
            eval_results.update(self._summaries(coco_eval, metric, classes, splits, logger))
        return eval_results

    def _evaluate(self, coco_gt: COCO, result_files: Dict[str, str], metric: str,
                  img_ids: List[int], logger) -> COCOeval:
        detections = load(result_files[metric])
        if metric == 'segm':
            # As mmdet / detectron2: with a 'bbox' in each result, pycocotools would use the
            # box area, not the mask area, for the small / medium / large ranges.
            for det in detections:
                det.pop('bbox', None)
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            coco_dt = coco_gt.loadRes(detections) if detections else _empty_results(coco_gt)
            coco_eval = COCOeval(coco_gt, coco_dt, metric)
            coco_eval.params.catIds = sorted(self.cat_ids)
            coco_eval.params.imgIds = img_ids
            coco_eval.params.maxDets = list(_MAX_DETS)
            coco_eval.params.iouThrs = self.iou_thrs
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        logger.info(f'Evaluating {metric}...\n' + buffer.getvalue())
        if not detections:
            logger.warning(f'OVCocoMetric: no {metric} predictions at all')
        return coco_eval

    def _summaries(self, coco_eval: COCOeval, metric: str, classes: Sequence[str],
                   splits: Dict[str, List[int]], logger) -> Dict[str, float]:
        out: Dict[str, float] = OrderedDict()
        precision = coco_eval.eval['precision']  # (iou, recall, class, area, max dets)
        params = coco_eval.params
        column = {cat_id: k for k, cat_id in enumerate(params.catIds)}
        k_of = [column[cat_id] for cat_id in self.cat_ids]  # label -> precision column
        t50 = int(np.argmin(np.abs(np.asarray(params.iouThrs) - 0.5)))
        area_all = params.areaRngLbl.index('all')
        m100 = params.maxDets.index(100)

        rows = [['split', '#classes', 'AP50', 'AP']]
        for split in SPLITS:
            cols = [k_of[label] for label in splits[split]]
            ap50 = mean_valid(precision[t50][:, cols, area_all, m100])
            ap = mean_valid(precision[:, :, cols, area_all, m100])
            out[f'{metric}_AP50_{split}'] = ap50
            out[f'{metric}_mAP_{split}'] = ap
            rows.append([split, str(len(cols)), f'{ap50:.4f}', f'{ap:.4f}'])
        for i, key in enumerate(_COCO_STATS):
            out[f'{metric}_{key}'] = float(coco_eval.stats[i])
        out[f'{metric}_AR@100'] = float(coco_eval.stats[8])
        logger.info('\n' + format_table(rows, f' OV-COCO {metric} '))

        if self.classwise:
            novel = set(splits['novel'])
            rows = [['class', 'split', 'AP50', 'AP']]
            for label, name in enumerate(classes):
                k = k_of[label]
                ap50 = mean_valid(precision[t50, :, k, area_all, m100])
                ap = mean_valid(precision[:, :, k, area_all, m100])
                out[f'{metric}_{name}_AP50'] = ap50
                out[f'{metric}_{name}_AP'] = ap
                rows.append([name, 'novel' if label in novel else 'base', f'{ap50:.4f}',
                             f'{ap:.4f}'])
            logger.info('\n' + format_table(rows))
        return out


def _empty_results(coco_gt: COCO) -> COCO:
    """A result set with no detections (pycocotools' loadRes rejects an empty list)."""
    empty = COCO()
    empty.dataset = dict(images=list(coco_gt.dataset['images']),
                         categories=list(coco_gt.dataset['categories']), annotations=[])
    empty.createIndex()
    return empty
