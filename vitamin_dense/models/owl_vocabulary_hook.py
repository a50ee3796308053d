"""Hook that gives :class:`~vitamin_dense.models.OwlDetector` the class names of its data.

Data set labels index the data set's class list, so the detector's queries
must be those classes, in that order. Before training the hook sets the
training vocabulary from the training data set's metainfo (``synonyms`` when
present, else ``classes``) and, for an open-vocabulary split
(``class_subset='base'``), restricts the training queries to its
``base_labels``; it also keeps the evaluation classes out of the
pseudo-negative pool. Before validation / testing it sets the test vocabulary
from the evaluation data set. A vocabulary fixed in the model's config is
kept, but must have as many classes as the data set, else the run stops with a
one-line error.
"""
from __future__ import annotations

import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..errors import VocabularyError
from ..registry import HOOKS
from ..text.vocabulary import Vocabulary

logger = logging.getLogger(__name__)


def vocabulary_from_metainfo(metainfo: dict, where: str) -> Vocabulary:
    """The classes of a data set, with their synonyms when the metainfo lists them."""
    classes = metainfo.get('classes')
    if not classes:
        raise VocabularyError(f'{where} has no class names in its metainfo (metainfo.classes)')
    synonyms = metainfo.get('synonyms')
    if synonyms and len(synonyms) == len(classes):
        return Vocabulary(tuple(tuple(s) if not isinstance(s, str) else (s,) for s in synonyms))
    return Vocabulary(tuple((c,) for c in classes))


def _metainfo(loader) -> Optional[dict]:
    dataset = getattr(loader, 'dataset', None)
    meta = getattr(dataset, 'metainfo', None)
    return dict(meta) if meta else None


@HOOKS.register_module()
class DetVocabularyHook(Hook):
    """Set the detector's train / test vocabularies from the data sets' metainfo."""

    priority = 'VERY_HIGH'

    @staticmethod
    def _model(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'set_vocabulary'):
            raise VocabularyError(f'DetVocabularyHook needs a model with set_vocabulary(); '
                                  f'{type(model).__name__} has none')
        return model

    @staticmethod
    def _check_fixed(current: Vocabulary, metainfo: dict, mode: str, split: str) -> None:
        classes = metainfo.get('classes') or ()
        if len(classes) != len(current):
            raise VocabularyError(
                f'the configured {mode} vocabulary has {len(current)} classes but the {split} '
                f'data set has {len(classes)}: its labels index the data set classes, so the '
                'vocabulary must list them in order (or leave it unset)')

    def before_train(self, runner) -> None:
        model = self._model(runner)
        meta = _metainfo(runner.train_dataloader)
        if meta is None:
            return
        if model.fixed_train_vocabulary:
            self._check_fixed(model.train_vocabulary, meta, 'training', 'training')
        else:
            train_classes = None
            if meta.get('class_subset') == 'base' and meta.get('base_labels') is not None \
                    and not model.fixed_train_classes:
                train_classes = list(meta['base_labels'])
            model.set_vocabulary(vocabulary_from_metainfo(meta, 'the training data set'),
                                 'train', train_classes=train_classes)
            logger.info('training vocabulary from the training data set: %d classes%s',
                        len(model.train_vocabulary), '' if train_classes is None else
                        f' ({len(train_classes)} base classes as training queries)')
        try:
            val_meta = _metainfo(runner.val_dataloader)
        except Exception:  # no validation loop configured
            val_meta = None
        if val_meta and val_meta.get('classes'):
            names = [n for syn in vocabulary_from_metainfo(val_meta, 'the validation data set')
                     .classes for n in syn]
            model.exclude_from_negatives(names)

    def _before_eval(self, runner, loader, split: str) -> None:
        model = self._model(runner)
        meta = _metainfo(loader)
        if meta is None:
            return
        if model.fixed_test_vocabulary:
            self._check_fixed(model.test_vocabulary, meta, 'test', split)
            return
        model.set_vocabulary(vocabulary_from_metainfo(meta, f'the {split} data set'), 'test')
        logger.info('test vocabulary from the %s data set: %d classes', split,
                    len(model.test_vocabulary))

    def before_val(self, runner) -> None:
        self._before_eval(runner, runner.val_dataloader, 'validation')

    def before_test(self, runner) -> None:
        self._before_eval(runner, runner.test_dataloader, 'test')


__all__ = ['DetVocabularyHook', 'vocabulary_from_metainfo']
