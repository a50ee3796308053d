"""Keep an open-vocabulary model's class list in step with the data set it is fed.

MMEngine gives the data set's ``metainfo`` to evaluators and visualizers but
not to the model, while an open-vocabulary model's labels are indices into
whatever class list the current data set has: base classes in training, all
classes (or another data set's) in evaluation. This hook sets
``model.dataset_meta`` from the train data set before training, from the
validation / test data set before those loops, and back to the train data
set after validation. Models without a ``set_dataset_meta`` method are left alone.
"""
from __future__ import annotations

from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from ..registry import HOOKS
from ..utils.openmmlab_alias import alias_into_openmmlab


def _metainfo(loop_or_loader) -> Optional[dict]:
    loader = getattr(loop_or_loader, 'dataloader', loop_or_loader)
    dataset = getattr(loader, 'dataset', None)
    return getattr(dataset, 'metainfo', None)


@HOOKS.register_module()
class DatasetVocabularyHook(Hook):
    """Call ``model.set_dataset_meta(dataset.metainfo)`` when the data set changes."""

    priority = 'VERY_HIGH'

    def _set(self, runner, meta: Optional[dict]) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if meta is not None and hasattr(model, 'set_dataset_meta'):
            model.set_dataset_meta(meta)

    def before_train(self, runner) -> None:
        self._set(runner, _metainfo(runner.train_loop))

    def before_val(self, runner) -> None:
        self._set(runner, _metainfo(runner.val_loop))

    def after_val(self, runner) -> None:
        loop = getattr(runner, '_train_loop', None)
        if isinstance(loop, BaseLoop):  # validation during training: back to its classes
            self._set(runner, _metainfo(loop))

    def before_test(self, runner) -> None:
        self._set(runner, _metainfo(runner.test_loop))


alias_into_openmmlab(DatasetVocabularyHook, 'HOOKS')
