"""Helpers shared by the open-vocabulary detection metrics: splits, AP slices, tables."""
from __future__ import annotations

import contextlib
import os.path as osp
import tempfile
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from ..errors import ConfigError
from ..text.vocabulary import normalize_name

SPLITS = ('novel', 'base', 'all')


def mean_valid(values: np.ndarray) -> float:
    """Mean of the entries > -1 (pycocotools / lvis convention), -1 when there are none."""
    values = np.asarray(values)
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def names_to_labels(classes: Sequence[str], names: Sequence[str], what: str) -> List[int]:
    """Label index of each name in ``names`` (matched after normalisation)."""
    index = {normalize_name(c): i for i, c in enumerate(classes)}
    unknown = [n for n in names if normalize_name(n) not in index]
    if unknown:
        raise ConfigError(f'{what} {unknown[:5]} are not among the {len(classes)} evaluated '
                          'classes')
    return sorted(index[normalize_name(n)] for n in names)


def split_labels(classes: Sequence[str], dataset_meta: Optional[Mapping],
                 novel_classes: Optional[Sequence[str]], base_classes: Optional[Sequence[str]],
                 default_novel: Optional[Sequence[bool]] = None,
                 default_base: Optional[Sequence[bool]] = None) -> Dict[str, List[int]]:
    """Label indices of the ``novel``, ``base`` and ``all`` (= base + novel) splits.

    Priority: the metric's own ``novel_classes`` / ``base_classes`` arguments,
    then the data set's ``is_novel`` metainfo, then the benchmark default
    (``default_novel`` / ``default_base`` masks). ``base`` defaults to every
    class that is not novel.
    """
    num = len(classes)
    if novel_classes is not None:
        novel = names_to_labels(classes, novel_classes, 'novel classes')
        base = names_to_labels(classes, base_classes, 'base classes') \
            if base_classes is not None else [i for i in range(num) if i not in set(novel)]
    elif dataset_meta is not None and dataset_meta.get('is_novel') is not None \
            and len(dataset_meta['is_novel']) == num:
        novel = [i for i, n in enumerate(dataset_meta['is_novel']) if n]
        base = [i for i, n in enumerate(dataset_meta['is_novel']) if not n]
    else:
        novel = [i for i, n in enumerate(default_novel or [False] * num) if n]
        if default_base is not None:
            base = [i for i, b in enumerate(default_base) if b]
        else:
            base = [i for i in range(num) if i not in set(novel)]
    overlap = set(novel) & set(base)
    if overlap:
        raise ConfigError(f'classes {[classes[i] for i in sorted(overlap)][:5]} are both base '
                          'and novel')
    return dict(novel=novel, base=base, all=sorted(set(novel) | set(base)))


def processed_image_ids(gts: Sequence[dict], known_ids, ann_file: str) -> List[int]:
    """Ids of the evaluated images, in order; an image unknown to the ground truth is an error."""
    ids, seen = [], set()
    for gt in gts:
        img_id = gt['img_id']
        if img_id not in seen:
            seen.add(img_id)
            ids.append(img_id)
    unknown = [i for i in ids if i not in known_ids]
    if unknown:
        raise ConfigError(f'{len(unknown)} evaluated image ids (e.g. {unknown[0]}) are not in '
                          f'{ann_file}: the evaluator ann_file must be the annotation file of '
                          'the test data set')
    return ids


def check_labels(preds: Sequence[dict], num_classes: int) -> None:
    """Predicted labels must index the evaluated classes."""
    for pred in preds:
        labels = np.asarray(pred['labels'])
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if bad.size:
            raise ConfigError(f'a prediction has label {int(bad[0])} but the data set has '
                              f'{num_classes} classes: labels must index dataset_meta["classes"]')


def check_metrics(metric) -> Optional[List[str]]:
    """Validate a metric's ``metric`` argument: None (automatic), 'bbox', 'segm' or a list."""
    if metric is None:
        return None
    metrics = [metric] if isinstance(metric, str) else list(metric)
    bad = [m for m in metrics if m not in ('bbox', 'segm')]
    if bad or not metrics:
        raise ConfigError(f"metric must be 'bbox', 'segm' or a list of them, got {metric!r}")
    return metrics


def metrics_for(requested: Optional[List[str]], preds: Sequence[dict], owner: str) -> List[str]:
    """The IoU types to evaluate: ``bbox`` (+ ``segm`` when predictions carry masks) if
    ``requested`` is None; an explicit ``segm`` without masks is an error."""
    has_masks = any('masks' in p for p in preds)
    if requested is None:
        return ['bbox', 'segm'] if has_masks else ['bbox']
    if 'segm' in requested and not has_masks:
        raise ConfigError(f"{owner}: metric 'segm' was requested but the predictions carry no "
                          'masks (pred_instances.masks)')
    return list(requested)


def format_table(rows: List[List[str]], title: Optional[str] = None) -> str:
    """An ASCII table (terminaltables, as mmdet's metrics print)."""
    from terminaltables import AsciiTable
    table = AsciiTable(rows, title)
    return table.table


@contextlib.contextmanager
def results_prefix(outfile_prefix: Optional[str]) -> Iterator[str]:
    """Where a metric writes its result JSON files: ``outfile_prefix`` when the
    user asked to keep them, else a temporary directory removed afterwards."""
    if outfile_prefix is not None:
        yield outfile_prefix
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield osp.join(tmp, 'results')
