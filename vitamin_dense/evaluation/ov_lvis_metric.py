"""OV-LVIS metric: LVIS federated AP (``lvis`` package) with AP_r / AP_c / AP_f and base / novel.

The OV-LVIS benchmark's headline number is mask AP on the rare categories
(``segm_APr``; box ``bbox_APr`` for box-only detectors). LVIS evaluation is
federated: a detection of category *c* in an image only counts when *c* is
annotated there or listed in the image's ``neg_category_ids``, and unmatched
detections of ``not_exhaustive_category_ids`` are ignored; so the evaluator
always reads the LVIS json (``ann_file`` is required) and keeps at most 300
detections per image (LVIS' rule).

Predictions are read from ``pred_instances`` of each data sample as mmdet's
``LVISMetric`` does. Keys (prefix ``ov_lvis/``), for ``m`` in ``bbox`` and,
when evaluated, ``segm``::

    {m}_AP {m}_AP50 {m}_AP75 {m}_APs {m}_APm {m}_APl   LVISEval's summary
    {m}_APr {m}_APc {m}_APf                            frequency groups of the json
    {m}_AR@300                                         average recall
    {m}_AP_novel {m}_AP_base                           the split (novel = rare by default)

The ``lvis`` package's ``np.float`` (gone in numpy 2) is handled by
:func:`~vitamin_dense.evaluation.lvis_compat.lvis_numpy_compat`.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

from lvis import LVIS, LVISEval, LVISResults
from mmdet.evaluation.metrics import LVISMetric
from mmengine.fileio import load
from mmengine.logging import MMLogger

from ..datasets.ov_detection_base import DatasetError, annotation_error, require_file
from ..datasets.ov_lvis import OV_LVIS_LAYOUT
from ..datasets.ov_splits import LVIS_FREQUENCIES, LVIS_NOVEL_FREQUENCIES
from ..errors import ConfigError
from ..registry import METRICS
from ..text.vocabulary import normalize_name
from ..utils.openmmlab_alias import alias_into_openmmlab
from .lvis_compat import lvis_numpy_compat
from .ov_split_utils import (results_prefix, check_labels, check_metrics, format_table, mean_valid, metrics_for,
                             processed_image_ids, split_labels)

_LVIS_KEYS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf')


@METRICS.register_module()
class OVLVISMetric(LVISMetric):
    """LVIS v1 box / mask AP with the frequency groups and the base / novel split.

    Args:
        ann_file: the LVIS json of the test set (``lvis_v1_val.json``); required.
        metric: ``'bbox'``, ``'segm'`` or a list; ``None`` (default) evaluates
            ``bbox``, plus ``segm`` when the predictions carry masks.
        novel_frequencies: frequency groups (of the json) counted as novel;
            default: the data set's ``novel_frequencies`` metainfo, else
            ``('r',)`` (rare), the OV-LVIS benchmark.
        novel_classes / base_classes: explicit split by name (overrides the
            frequencies; base defaults to every other class).
        max_dets: detections kept per image (LVIS: 300).
        classwise: also log (and return) per-class AP.
        format_only / outfile_prefix / backend_args / collect_device /
            prefix: as mmdet's ``LVISMetric``.
    """

    default_prefix: Optional[str] = 'ov_lvis'

    def __init__(self, ann_file: Optional[str] = None,
                 metric: Union[None, str, Sequence[str]] = None,
                 novel_frequencies: Optional[Sequence[str]] = None,
                 novel_classes: Optional[Sequence[str]] = None,
                 base_classes: Optional[Sequence[str]] = None,
                 max_dets: int = 300,
                 classwise: bool = False,
                 format_only: bool = False,
                 outfile_prefix: Optional[str] = None,
                 backend_args: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        self.requested = check_metrics(metric)
        if ann_file is None:
            raise ConfigError('OVLVISMetric needs ann_file (the LVIS json, e.g. '
                              'data/lvis_v1/annotations/lvis_v1_val.json): federated LVIS '
                              'evaluation reads its negative and not-exhaustive category lists')
        require_file(ann_file, 'OV-LVIS evaluation annotation file', OV_LVIS_LAYOUT, backend_args)
        bad = [f for f in novel_frequencies or () if f not in LVIS_FREQUENCIES]
        if bad:
            raise ConfigError(f'novel_frequencies must be among {LVIS_FREQUENCIES}, got {bad}')
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                super().__init__(ann_file=ann_file, metric=list(self.requested or ['bbox']),
                                 classwise=classwise, format_only=format_only,
                                 outfile_prefix=outfile_prefix, collect_device=collect_device,
                                 prefix=prefix, backend_args=backend_args)
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise annotation_error(ann_file, 'LVIS', exc) from exc
        self.ann_file = ann_file
        self.novel_frequencies = tuple(novel_frequencies) if novel_frequencies else None
        self.novel_classes = tuple(novel_classes) if novel_classes is not None else None
        self.base_classes = tuple(base_classes) if base_classes is not None else None
        if int(max_dets) <= 0:
            raise ConfigError(f'max_dets must be positive, got {max_dets}')
        self.max_dets = int(max_dets)

    # ------------------------------------------------------------------ helpers
    def _categories(self) -> List[dict]:
        """The json categories of the evaluated classes, in label order."""
        categories = sorted(self._lvis_api.dataset['categories'], key=lambda c: c['id'])
        if self.dataset_meta and self.dataset_meta.get('classes'):
            by_name = {normalize_name(c['name']): c for c in categories}
            classes = list(self.dataset_meta['classes'])
            missing = [c for c in classes if normalize_name(c) not in by_name]
            if missing:
                raise DatasetError(f'{self.ann_file} has no category {missing[:5]}: the '
                                   'evaluator needs the LVIS ground truth of every class of '
                                   'the data set')
            categories = [by_name[normalize_name(c)] for c in classes]
        else:
            MMLogger.get_current_instance().warning(
                'OVLVISMetric: no dataset_meta; evaluating every category of the annotation file')
        no_freq = [c['name'] for c in categories if c.get('frequency') not in LVIS_FREQUENCIES]
        if no_freq:
            raise DatasetError(f"{self.ann_file}: categories {no_freq[:5]} have no LVIS "
                               "'frequency' (r/c/f); an LVIS v1 annotation file is needed")
        return categories

    def _novel_frequencies(self) -> Tuple[str, ...]:
        if self.novel_frequencies is not None:
            return self.novel_frequencies
        if self.dataset_meta and self.dataset_meta.get('novel_frequencies'):
            return tuple(self.dataset_meta['novel_frequencies'])
        return LVIS_NOVEL_FREQUENCIES

    # ------------------------------------------------------------------ evaluation
    def compute_metrics(self, results: list) -> Dict[str, float]:
        gts, preds = zip(*results)
        with results_prefix(self.outfile_prefix) as outfile_prefix:
            return self._compute(gts, preds, outfile_prefix, MMLogger.get_current_instance())

    def _compute(self, gts, preds, outfile_prefix: str, logger) -> Dict[str, float]:
        lvis_gt: LVIS = self._lvis_api
        categories = self._categories()
        classes = [c['name'] for c in categories] if not (
            self.dataset_meta and self.dataset_meta.get('classes')) else \
            list(self.dataset_meta['classes'])
        self.cat_ids = [c['id'] for c in categories]
        self.img_ids = processed_image_ids(gts, lvis_gt.imgs, self.ann_file)
        check_labels(preds, len(classes))
        if len(self.img_ids) < len(lvis_gt.imgs):
            logger.info(f'OVLVISMetric: evaluating {len(self.img_ids)} of the '
                        f'{len(lvis_gt.imgs)} images of the annotation file')
        result_files = self.results2json(preds, outfile_prefix)
        if self.format_only:
            logger.info(f'results are saved in {osp.dirname(outfile_prefix)}')
            return OrderedDict()

        novel_freq = self._novel_frequencies()
        splits = split_labels(classes, None, self.novel_classes, self.base_classes,
                              default_novel=[c['frequency'] in novel_freq for c in categories])
        eval_results: Dict[str, float] = OrderedDict()
        for metric in metrics_for(self.requested, preds, 'OVLVISMetric'):
            lvis_eval = self._evaluate(lvis_gt, result_files, metric, logger)
            eval_results.update(self._summaries(lvis_eval, metric, classes, splits, logger))
        return eval_results

    def _evaluate(self, lvis_gt: LVIS, result_files: Dict[str, str], metric: str,
                  logger) -> LVISEval:
        detections = load(result_files[metric])
        if metric == 'segm':
            # LVISResults takes the box area as the detection area when a 'bbox' is present;
            # drop it so the size ranges use the mask area (as detectron2 does).
            for det in detections:
                det.pop('bbox', None)
        lvis_dt = LVISResults(lvis_gt, detections, max_dets=self.max_dets) if detections \
            else _empty_results(lvis_gt)
        lvis_eval = LVISEval(lvis_gt, lvis_dt, metric)
        lvis_eval.params.img_ids = list(self.img_ids)
        lvis_eval.params.cat_ids = sorted(self.cat_ids)
        lvis_eval.params.max_dets = self.max_dets
        with lvis_numpy_compat():
            lvis_eval.run()
        if not detections:
            logger.warning(f'OVLVISMetric: no {metric} predictions at all')
        return lvis_eval

    def _summaries(self, lvis_eval: LVISEval, metric: str, classes: Sequence[str],
                   splits: Dict[str, List[int]], logger) -> Dict[str, float]:
        out: Dict[str, float] = OrderedDict()
        summary = lvis_eval.get_results()
        for key in _LVIS_KEYS:
            out[f'{metric}_{key}'] = float(summary[key])
        out[f'{metric}_AR@{self.max_dets}'] = float(summary[f'AR@{self.max_dets}'])

        precision = lvis_eval.eval['precision']  # (iou, recall, class, area)
        column = {cat_id: k for k, cat_id in enumerate(lvis_eval.params.cat_ids)}
        k_of = [column[cat_id] for cat_id in self.cat_ids]
        area_all = lvis_eval.params.area_rng_lbl.index('all')
        rows = [['split', '#classes', 'AP']]
        for split in ('novel', 'base'):
            cols = [k_of[label] for label in splits[split]]
            ap = mean_valid(precision[:, :, cols, area_all])
            out[f'{metric}_AP_{split}'] = ap
            rows.append([split, str(len(cols)), f'{ap:.4f}'])
        for key in ('APr', 'APc', 'APf', 'AP'):
            rows.append([key, '', f'{summary[key]:.4f}'])
        logger.info('\n' + format_table(rows, f' OV-LVIS {metric} '))

        if self.classwise:
            rows = [['class', 'AP']]
            for label, name in enumerate(classes):
                ap = mean_valid(precision[:, :, k_of[label], area_all])
                out[f'{metric}_{name}_AP'] = ap
                rows.append([name, f'{ap:.4f}'])
            logger.info('\n' + format_table(rows))
        return out


class _EmptyResults(LVISResults):
    """An LVIS result set with no detections (LVISResults rejects an empty list)."""

    def __init__(self, lvis_gt: LVIS) -> None:  # no super(): it reads results[0]
        self.logger = logging.getLogger(__name__)
        self.dataset = dict(images=copy.deepcopy(lvis_gt.dataset['images']),
                            categories=copy.deepcopy(lvis_gt.dataset['categories']),
                            annotations=[])
        self._create_index()


def _empty_results(lvis_gt: LVIS) -> LVISResults:
    return _EmptyResults(lvis_gt)


# stock mmdet configs (default_scope='mmdet') can name it too
alias_into_openmmlab(OVLVISMetric, 'METRICS', packages=('mmdet',))
