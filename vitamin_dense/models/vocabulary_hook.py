"""Hook that gives open-vocabulary models the class names of the data they see.

Before training, the model's training vocabulary becomes the training data
set's classes (with ``synonyms`` and ``thing_classes`` from its metainfo);
before validation and testing, its test vocabulary becomes the evaluation
data set's. A vocabulary fixed in the model's config is kept, but must have
as many classes as the data set (labels index it), else the run stops with
a one-line error.
"""
from __future__ import annotations

import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..errors import VocabularyError
from ..registry import HOOKS
from .seg_vocabulary import SegVocabulary

logger = logging.getLogger(__name__)


def _dataset_of(loader) -> Optional[object]:
    dataset = getattr(loader, 'dataset', None)
    return dataset


@HOOKS.register_module()
class VocabularyHook(Hook):
    """Set ``model.set_vocabulary(...)`` from the data sets' metainfo."""

    priority = 'VERY_HIGH'

    def _model(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'set_vocabulary'):
            raise VocabularyError(f'VocabularyHook needs a model with set_vocabulary(); '
                                  f'{type(model).__name__} has none')
        return model

    def _apply(self, runner, loader, mode: str, split: str) -> None:
        model = self._model(runner)
        dataset = _dataset_of(loader)
        metainfo = getattr(dataset, 'metainfo', None)
        fixed = getattr(model, f'fixed_{mode}_vocabulary', False)
        if fixed:
            current = model.train_vocabulary if mode == 'train' else model.test_vocabulary
            classes = (metainfo or {}).get('classes')
            if classes is not None and current is not None and len(classes) != len(current):
                raise VocabularyError(
                    f'the configured {mode} vocabulary has {len(current)} classes but the '
                    f'{split} data set has {len(classes)}: its labels index the data set '
                    'classes, so the vocabulary must list them in order')
            return
        vocab = SegVocabulary.from_metainfo(metainfo or {}, where=f'the {split} data set')
        model.set_vocabulary(vocab, mode)
        logger.info('%s vocabulary from the %s data set: %d classes (%d things)', mode, split,
                    len(vocab), sum(vocab.is_thing))

    def before_train(self, runner) -> None:
        self._apply(runner, runner.train_dataloader, 'train', 'training')

    def before_val(self, runner) -> None:
        self._apply(runner, runner.val_dataloader, 'test', 'validation')

    def before_test(self, runner) -> None:
        self._apply(runner, runner.test_dataloader, 'test', 'test')


__all__ = ['VocabularyHook']
