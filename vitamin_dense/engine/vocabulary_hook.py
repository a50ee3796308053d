"""Keep an open-vocabulary model's class list in step with the data set it is fed.

MMEngine gives a data set's ``metainfo`` to evaluators and visualizers but not
to the model, while an open-vocabulary model's labels are indices into the
current data set's class list: base classes (or all, with base ones marked) in
training, another data set's classes in zero-shot evaluation. Every model of
this package (FC-CLIP segmentor, OWL detector, Sliding F-ViT) therefore
implements one method::

    model.set_dataset_vocabulary(metainfo: dict, mode: str)   # mode: 'train' | 'test'

and :class:`VocabularyHook` calls it: with the training data set before
training (and the validation data set's, as ``'test'``, so a detector can keep
evaluation classes out of its pseudo-negatives), and with the validation / test
data set before those loops (:class:`~vitamin_dense.engine.MultiDatasetValLoop`
calls :meth:`VocabularyHook.apply` before each of its extra sets). Models keep
the two vocabularies apart, so a validation inside training leaves the training
classes alone.

A vocabulary fixed in the model config (``fixed_train_vocabulary`` /
``fixed_test_vocabulary`` true) is kept, but must have as many classes as the
data set, since its labels index it; otherwise the run stops with one line.
"""
from __future__ import annotations

import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..errors import VocabularyError
from ..registry import HOOKS
from ..utils.openmmlab_alias import alias_into_openmmlab

logger = logging.getLogger(__name__)

_SPLIT_NAMES = {'train': 'training', 'val': 'validation', 'test': 'test'}


def dataset_metainfo(loop_or_loader) -> Optional[dict]:
    """The ``metainfo`` of a loop's or data loader's data set, if it has one."""
    loader = getattr(loop_or_loader, 'dataloader', loop_or_loader)
    meta = getattr(getattr(loader, 'dataset', None), 'metainfo', None)
    return dict(meta) if meta else None


def check_fixed_vocabulary(model, metainfo: dict, mode: str, split: str) -> None:
    """Stop with one line when a config-fixed vocabulary cannot index the data set's labels."""
    current = getattr(model, f'{mode}_vocabulary', None)
    classes = metainfo.get('classes')
    if classes is not None and current is not None and len(classes) != len(current):
        raise VocabularyError(
            f'the configured {mode} vocabulary has {len(current)} classes but the {split} data '
            f'set has {len(classes)}: its labels index the data set classes, so the vocabulary '
            'must list them in order (or leave it unset to take it from the data set)')


@HOOKS.register_module()
class VocabularyHook(Hook):
    """Call ``model.set_dataset_vocabulary(metainfo, mode)`` whenever the data set changes."""

    priority = 'VERY_HIGH'

    @staticmethod
    def _model(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'set_dataset_vocabulary'):
            raise VocabularyError(
                f'VocabularyHook needs a model with set_dataset_vocabulary(metainfo, mode); '
                f'{type(model).__name__} has none (remove the hook from custom_hooks)')
        return model

    def apply(self, runner, loop_or_loader, mode: str, split: str) -> None:
        """Hand the classes of a loop's or data loader's data set to the model."""
        meta = dataset_metainfo(loop_or_loader)
        if meta is None:
            return
        model = self._model(runner)
        if getattr(model, f'fixed_{mode}_vocabulary', False):
            check_fixed_vocabulary(model, meta, mode, _SPLIT_NAMES[split])
            return
        model.set_dataset_vocabulary(meta, mode)
        logger.debug('%s vocabulary from the %s data set: %d classes', mode,
                     _SPLIT_NAMES[split], len(meta.get('classes') or ()))

    def before_train(self, runner) -> None:
        self.apply(runner, runner.train_dataloader, 'train', 'train')
        val_loop = getattr(runner, '_val_loop', None)
        if val_loop is not None:  # built lazily: only look when validation is configured
            # every evaluation set (MultiDatasetValLoop's held-out ones too), the primary last
            for loader in getattr(val_loop, 'extra_dataloaders', ()):
                self.apply(runner, loader, 'test', 'val')
            self.apply(runner, runner.val_dataloader, 'test', 'val')

    def before_val(self, runner) -> None:
        self.apply(runner, runner.val_dataloader, 'test', 'val')

    def before_test(self, runner) -> None:
        self.apply(runner, runner.test_dataloader, 'test', 'test')


alias_into_openmmlab(VocabularyHook, 'HOOKS')

__all__ = ['VocabularyHook', 'check_fixed_vocabulary', 'dataset_metainfo']
