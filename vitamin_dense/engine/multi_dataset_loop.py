"""Validation and test on several data sets at once, each with its own vocabulary.

Fine-tuning an open-vocabulary model on a few classes can cost it the others
(GLIP, GroundingDINO and YOLO-World users report it; MMDetection's GLIP notes
advise keeping the best checkpoint rather than the last). To watch that, a
run evaluates, besides its own validation set, a *held-out vocabulary*: other
classes on the same images, or another data set (COCO, LVIS, ADE20K). The
model must be told each set's classes (its labels index them), so MMDetection's
``MultiDatasetsEvaluator`` over a ``ConcatDataset``, which shares one model
state across the slices, does not fit; these loops run the sets one after the
other instead::

    val_cfg = dict(type='MultiDatasetValLoop', extra_datasets=[
        dict(prefix='coco', dataset=dict(type='CocoFormatDataset', data_root='data/coco/',
                                         ann_file='annotations/instances_val2017.json',
                                         data_prefix=dict(img='val2017/'), indices=500),
             evaluator=dict(type='OpenVocabCocoMetric', metric='bbox',
                            ann_file='data/coco/annotations/instances_val2017.json')),
    ], hmean_keys=['coco/bbox_mAP', 'coco/coco/bbox_mAP'])
    test_cfg = dict(type='MultiDatasetTestLoop', extra_datasets=...)   # the same for tools/test.py

* the primary set is ``val_dataloader`` / ``val_evaluator`` as usual (its
  metric keys unchanged, its iterations seen by every hook);
* each extra set gives ``prefix`` and either ``dataset`` (its data loader is
  the primary's with this data set, which takes the primary's ``pipeline``,
  ``test_mode`` and ``backend_args`` unless it sets them) or a whole
  ``dataloader``; ``evaluator`` defaults to a copy of the primary's. Its
  metric keys are ``<prefix>/<key>`` (``coco/coco/bbox_mAP``);
* before each set the :class:`~vitamin_dense.engine.VocabularyHook` (when the
  config has it) hands the set's classes to the model, and the primary's
  come back afterwards; before training every set's classes are kept out of
  the detector's pseudo-negatives;
* ``hmean_keys`` adds ``hmean``, the harmonic mean of those metrics (your
  classes and the held-out ones), one number to keep the best checkpoint by:
  ``CheckpointHook(save_best='hmean', rule='greater')``.

Extra sets are evaluated without per-iteration hooks (logging, drawing): their
metrics join the primary's in ``after_val_epoch`` / ``after_test_epoch``, so
loggers, ``save_best`` and ``tools/test.py`` see them all.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import Evaluator
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.amp import autocast

from ..errors import ConfigError
from ..registry import LOOPS

INHERITED_DATASET_KEYS = ('pipeline', 'test_mode', 'backend_args')


@dataclass
class ExtraSet:
    """One more evaluation set: its metric key prefix, data loader and evaluator."""

    prefix: str
    dataloader: Any
    evaluator: Evaluator


def extra_dataloader_cfg(entry: dict, primary: Any, where: str) -> dict:
    """The data loader config of an extra set (see the module doc)."""
    if 'dataloader' in entry:
        return copy.deepcopy(entry['dataloader'])
    if 'dataset' not in entry:
        raise ConfigError(f"{where}: give 'dataset' (or a whole 'dataloader')")
    if not isinstance(primary, dict):
        raise ConfigError(f"{where}: the primary data loader is already built; give a whole "
                          "'dataloader' instead of 'dataset'")
    loader = copy.deepcopy(primary)
    dataset = copy.deepcopy(dict(entry['dataset']))
    base = primary.get('dataset') or {}
    for key in INHERITED_DATASET_KEYS:
        if key not in dataset and key in base:
            dataset[key] = copy.deepcopy(base[key])
    loader['dataset'] = dataset
    return loader


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean of non-negative scores; 0 when one of them is 0."""
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1.0 / v for v in values)


class MultiDatasetMixin:
    """Builds and runs the extra sets of :class:`MultiDatasetValLoop` / ``TestLoop``."""

    split: str  # 'val' or 'test' (subclasses): the loop's hooks, config keys, loss names

    def __init__(self, runner, dataloader, evaluator, extra_datasets: Sequence[dict] = (),
                 hmean_keys: Sequence[str] = (), fp16: bool = False) -> None:
        dataloader_cfg, evaluator_cfg = copy.deepcopy(dataloader), copy.deepcopy(evaluator)
        super().__init__(runner, dataloader, evaluator, fp16=fp16)
        self._setup_extra_sets(dataloader_cfg, evaluator_cfg, extra_datasets, hmean_keys)

    def _setup_extra_sets(self, dataloader_cfg: Any, evaluator_cfg: Any,
                          extra_datasets: Sequence[dict], hmean_keys: Sequence[str]) -> None:
        split = self.split
        self.hmean_keys = list(hmean_keys)
        self.extra_sets: List[ExtraSet] = []
        seen = set()
        for i, entry in enumerate(extra_datasets):
            where = f'{split}_cfg.extra_datasets[{i}]'
            if not isinstance(entry, dict):
                raise ConfigError(f'{where} must be a dict with prefix, dataset and evaluator')
            prefix = str(entry.get('prefix', '')).strip('/')
            if not prefix or prefix in seen:
                raise ConfigError(f"{where}: needs a 'prefix' of its own (it names the metric "
                                  f"keys, <prefix>/<metric>){'' if not prefix else ': ' + prefix}"
                                  f"{' is used twice' if prefix in seen else ''}")
            seen.add(prefix)
            unknown = set(entry) - {'prefix', 'dataset', 'dataloader', 'evaluator'}
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                                  '(prefix, dataset or dataloader, evaluator)')
            loader = self.runner.build_dataloader(
                extra_dataloader_cfg(entry, dataloader_cfg, where), seed=self.runner.seed,
                diff_rank_seed=self.runner._randomness_cfg.get('diff_rank_seed', False))
            evaluator = entry.get('evaluator', None)
            if evaluator is None:
                if not isinstance(evaluator_cfg, (dict, list)):
                    raise ConfigError(f"{where}: give an 'evaluator' (the primary one is "
                                      'already built and cannot be copied)')
                evaluator = copy.deepcopy(evaluator_cfg)
            evaluator = self.runner.build_evaluator(copy.deepcopy(evaluator))
            if hasattr(loader.dataset, 'metainfo'):
                evaluator.dataset_meta = loader.dataset.metainfo
            self.extra_sets.append(ExtraSet(prefix, loader, evaluator))

    @property
    def extra_dataloaders(self) -> List[Any]:
        """The extra sets' data loaders (the VocabularyHook reads their classes)."""
        return [s.dataloader for s in self.extra_sets]

    def _vocabulary_hook(self):
        from .vocabulary_hook import VocabularyHook
        for hook in self.runner.hooks:
            if isinstance(hook, VocabularyHook):
                return hook
        return None

    @torch.no_grad()
    def _evaluate_extra(self, extra: ExtraSet, step: str) -> Dict[str, float]:
        self.runner.logger.info(f'{self.split}: held-out set {extra.prefix!r} '
                                f'({len(extra.dataloader.dataset)} images)')
        model = self.runner.model
        run_step = model.val_step if step == 'val' else model.test_step
        for data_batch in extra.dataloader:
            with autocast(enabled=self.fp16):
                outputs = run_step(data_batch)
            extra.evaluator.process(data_samples=outputs, data_batch=data_batch)
        metrics = extra.evaluator.evaluate(len(extra.dataloader.dataset))
        return {f'{extra.prefix}/{key}': value for key, value in metrics.items()}

    def run_extra_sets(self, metrics: Dict[str, Any], step: str) -> Dict[str, Any]:
        """Evaluate every extra set (each with its own vocabulary); adds their metrics and
        ``hmean`` to ``metrics``."""
        hook = self._vocabulary_hook()
        try:
            for extra in self.extra_sets:
                if hook is not None:
                    hook.apply(self.runner, extra.dataloader, 'test', self.split)
                metrics.update(self._evaluate_extra(extra, step))
        finally:
            if hook is not None and self.extra_sets:
                hook.apply(self.runner, self.dataloader, 'test', self.split)
        if self.hmean_keys:
            missing = [k for k in self.hmean_keys if k not in metrics]
            if missing:
                raise ConfigError(f"{self.split}_cfg.hmean_keys: no metric {', '.join(missing)};"
                                  f" the metrics are {', '.join(sorted(metrics))}")
            metrics['hmean'] = harmonic_mean([float(metrics[k]) for k in self.hmean_keys])
        return metrics


    def run(self) -> dict:
        """MMEngine's ``ValLoop.run`` / ``TestLoop.run`` (as ``self.split``), with the extra
        sets evaluated before ``after_<split>_epoch`` sees the metrics."""
        stage = self.split
        self.runner.call_hook(f'before_{stage}')
        self.runner.call_hook(f'before_{stage}_epoch')
        self.runner.model.eval()
        getattr(self, f'{stage}_loss').clear()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        metrics.update(_loss_metrics(getattr(self, f'{stage}_loss'), stage))
        metrics = self.run_extra_sets(metrics, stage)
        self.runner.call_hook(f'after_{stage}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{stage}')
        return metrics


@LOOPS.register_module()
class MultiDatasetValLoop(MultiDatasetMixin, ValLoop):
    """MMEngine's ``ValLoop`` plus extra evaluation sets (see the module doc).

    Args:
        extra_datasets: dicts with ``prefix``, ``dataset`` (or ``dataloader``)
            and optionally ``evaluator``.
        hmean_keys: metric keys whose harmonic mean is reported as ``hmean``.
        Other arguments as ``ValLoop``.
    """

    split = 'val'


@LOOPS.register_module()
class MultiDatasetTestLoop(MultiDatasetMixin, TestLoop):
    """MMEngine's ``TestLoop`` plus extra evaluation sets (as :class:`MultiDatasetValLoop`)."""

    split = 'test'


def _loss_metrics(losses: dict, stage: str) -> Dict[str, float]:
    """MMEngine's per-stage loss metrics (models that return losses at val / test)."""
    if not losses:
        return {}
    from mmengine.runner.loops import _parse_losses
    return _parse_losses(losses, stage)


__all__ = ['MultiDatasetValLoop', 'MultiDatasetTestLoop', 'ExtraSet', 'harmonic_mean',
           'extra_dataloader_cfg']
