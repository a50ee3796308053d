"""PQ / SQ / RQ (all, things, stuff, and seen / unseen classes) over mmdet's
``CocoPanopticMetric`` and panopticapi's matching.

Predictions are read as mmdet writes them: ``pred_panoptic_seg.sem_seg`` =
``label + instance_id * INSTANCE_OFFSET`` with labels contiguous over
``dataset_meta['classes']`` (things first); label ``len(classes)`` (or the
sample's ``ignore_index``) is void. Each image is scored as it arrives with
mmdet's copy of panopticapi's ``pq_compute_single_core`` (so memory stays flat
and distributed runs gather small ``PQStat`` objects), and the per-class
statistics are averaged with panopticapi's ``PQStat.pq_average`` over all
classes, things, stuff, and the seen / unseen subsets.

Ground truth comes, per image, from the data sample (``seg_map_path`` and
``segments_info`` in PackDetInputs' ``meta_keys``: what our data set configs
pack), else from ``ann_file`` + ``seg_prefix`` (mmdet's way). Categories are
matched to the data set's classes by name, so annotation files whose category
order differs from the label order (Cityscapes) are scored correctly.
"""
from __future__ import annotations

import math
import os.path as osp
from typing import Dict, List, Optional, Sequence

import mmcv
import numpy as np
from mmdet.evaluation.functional import pq_compute_single_core
from mmdet.evaluation.metrics import CocoPanopticMetric
from mmdet.evaluation.metrics.coco_panoptic_metric import parse_pq_results, print_panoptic_table
from mmengine.logging import MMLogger, print_log
from panopticapi.evaluation import PQStat
from panopticapi.utils import rgb2id

from ..datasets.errors import DatasetError, DatasetFileError
from ..datasets.panoptic import use_annotation_file_names
from ..registry import METRICS
from ..text.vocabulary import VocabSpec
from .seen_split import resolve_seen_flags, split_indices


@METRICS.register_module()
class OpenVocabPanopticMetric(CocoPanopticMetric):
    """Panoptic quality with seen / unseen splits.

    Args:
        ann_file: optional panoptic JSON (COCO format) for the ground truth when
            the data samples do not carry ``segments_info``.
        seg_prefix: folder of the ground-truth panoptic PNGs (with ``ann_file``).
        train_vocabulary: the classes the model was trained on (any
            ``parse_vocabulary`` spec, e.g. ``'dataset:coco_panoptic'``); adds
            ``PQ_seen`` / ``PQ_unseen`` (and SQ, RQ) when given.
        classwise: also log the per-class table.
        outfile_prefix: keep the predicted PNGs in ``<prefix>.panoptic/``
            (default: a temporary folder).
        Other arguments as mmdet's ``CocoPanopticMetric``.
    """

    default_prefix: Optional[str] = 'panoptic'

    def __init__(self, ann_file: Optional[str] = None, seg_prefix: Optional[str] = None,
                 train_vocabulary: Optional[VocabSpec] = None, classwise: bool = False,
                 outfile_prefix: Optional[str] = None, nproc: int = 1,
                 backend_args: Optional[dict] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        self.tmp_dir = None  # mmdet's __del__ reads it even when __init__ stops early
        if ann_file and not osp.isfile(ann_file):
            raise DatasetFileError(f'panoptic metric: missing annotation file {ann_file}')
        super().__init__(ann_file=ann_file, seg_prefix=seg_prefix, classwise=classwise,
                         format_only=False, outfile_prefix=outfile_prefix, nproc=nproc,
                         backend_args=backend_args, collect_device=collect_device,
                         prefix=prefix)
        self.train_vocabulary = train_vocabulary
        if self._coco_api is not None:
            use_annotation_file_names(self._coco_api)

    # -- categories ----------------------------------------------------------
    def _label_categories(self) -> Dict[int, dict]:
        """Categories keyed by contiguous label (the space predictions live in)."""
        things = set(self.dataset_meta.get('thing_classes', ()))
        return {i: dict(id=i, name=name, isthing=int(name in things))
                for i, name in enumerate(self.dataset_meta['classes'])}

    def _cat_to_label(self) -> Dict[int, int]:
        """JSON category id -> label, matched by name (ann_file mode)."""
        label_of = {name: i for i, name in enumerate(self.dataset_meta['classes'])}
        return {cid: label_of[cat['name']] for cid, cat in self._coco_api.cats.items()
                if cat['name'] in label_of}

    # -- per image -----------------------------------------------------------
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        categories = self._label_categories()
        for sample in data_samples:
            img_id = sample['img_id']
            stem = osp.splitext(osp.basename(sample.get('img_path') or str(img_id)))[0]
            segm_file = f'{stem}.png'
            # mmdet's parser writes void into the array in place: give it a copy
            pan = sample['pred_panoptic_seg']
            own = dict(sample, pred_panoptic_seg=dict(pan, sem_seg=pan['sem_seg'].clone()))
            pred = self._parse_predictions(pred=own, img_id=img_id, segm_file=segm_file,
                                           label2cat=None)
            gt, gt_folder = self._ground_truth(sample, categories)
            pq_stat = pq_compute_single_core(
                proc_id=0, annotation_set=[(gt, pred)], gt_folder=gt_folder,
                pred_folder=self.seg_out_dir, categories=categories,
                backend_args=self.backend_args)
            self.results.append(pq_stat)

    def _ground_truth(self, sample: dict, categories: Dict[int, dict]):
        img_id = sample['img_id']
        if sample.get('segments_info') is not None and sample.get('seg_map_path'):
            path = sample['seg_map_path']
            ids, counts = np.unique(rgb2id(mmcv.imread(path, channel_order='rgb')),
                                    return_counts=True)
            area = dict(zip(ids.tolist(), counts.tolist()))
            segments = []
            for seg in sample['segments_info']:
                label = int(seg['category'])
                crowd = bool(categories[label]['isthing']) and not seg.get('is_thing', True)
                segments.append(dict(id=int(seg['id']), category_id=label,
                                     iscrowd=int(crowd), area=area.get(int(seg['id']), 0)))
            gt = dict(image_id=img_id, file_name=osp.basename(path), segments_info=segments)
            return gt, osp.dirname(path)
        if self._coco_api is None:
            raise DatasetError(
                "panoptic metric: no ground truth for image "
                f"{img_id}: pack 'segments_info' and 'seg_map_path' (PackDetInputs meta_keys) or "
                'set the metric\'s ann_file and seg_prefix')
        cat_to_label = self._cat_to_label()
        segments = []
        for seg in self._coco_api.imgToAnns[img_id]:
            if seg['category_id'] not in cat_to_label:
                continue  # a category outside the evaluated classes
            segments.append(dict(seg, category_id=cat_to_label[seg['category_id']]))
        info = self._coco_api.imgs[img_id]
        return (dict(image_id=img_id, file_name=info['segm_file'], segments_info=segments),
                self.seg_prefix)

    # -- aggregate -----------------------------------------------------------
    def compute_metrics(self, results: list) -> Dict[str, float]:
        logger: MMLogger = MMLogger.get_current_instance()
        categories = self._label_categories()
        pq_stat = PQStat()
        for result in results:
            pq_stat += result
        pq_results = {}
        for name, isthing in (('All', None), ('Things', True), ('Stuff', False)):
            pq_results[name], per_class = safe_pq_average(pq_stat, categories, isthing)
            if name == 'All':
                pq_results['classwise'] = per_class
        classwise = None
        if self.classwise:
            classwise = {categories[k]['name']: v for k, v in pq_results['classwise'].items()}
        print_panoptic_table(pq_results, classwise, logger=logger)
        metrics = parse_pq_results(pq_results)

        flags = resolve_seen_flags(self.dataset_meta, self.train_vocabulary)
        rows = []
        for split, indices in split_indices(flags):
            subset = {i: categories[i] for i in indices}
            avg, _ = safe_pq_average(pq_stat, subset, None)
            for key in ('pq', 'sq', 'rq'):
                metrics[f'{key.upper()}_{split}'] = 100 * avg[key]
            rows.append(f"{split}: {len(indices)} classes ({avg['n']} present) "
                        f"PQ {100 * avg['pq']:.2f} SQ {100 * avg['sq']:.2f} "
                        f"RQ {100 * avg['rq']:.2f}")
        if rows:
            print_log('Panoptic seen / unseen classes: ' + '; '.join(rows), logger=logger)
        return metrics


def safe_pq_average(pq_stat: PQStat, categories: Dict[int, dict], isthing: Optional[bool]):
    """panopticapi's ``pq_average``, with NaN instead of a division by zero when no
    category of the subset occurs in ground truth or predictions."""
    try:
        return pq_stat.pq_average(categories, isthing=isthing)
    except ZeroDivisionError:
        nan = math.nan
        return {'pq': nan, 'sq': nan, 'rq': nan, 'n': 0}, {}


__all__: List[str] = ['OpenVocabPanopticMetric', 'safe_pq_average']
