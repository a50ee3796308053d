"""VocabularyHook: one protocol (``set_dataset_vocabulary``) for every open-vocabulary model."""
from types import SimpleNamespace

import pytest
from mmengine.registry import HOOKS, DefaultScope

import vitamin_dense  # noqa: F401
from vitamin_dense.engine import VocabularyHook
from vitamin_dense.errors import VocabularyError
from vitamin_dense.text import vocabulary_from_metainfo

TRAIN = dict(classes=('cat', 'dog'), synonyms=(('kitty',), 'puppy, hound'))
VAL = dict(classes=('cat', 'dog', 'zebra'))


class _Model:
    def __init__(self, fixed_train=None, fixed_test=None):
        self.calls = []
        self.fixed_train_vocabulary = fixed_train is not None
        self.fixed_test_vocabulary = fixed_test is not None
        self.train_vocabulary, self.test_vocabulary = fixed_train, fixed_test

    def set_dataset_vocabulary(self, metainfo, mode):
        self.calls.append((mode, tuple(metainfo['classes'])))


def _loader(meta):
    return SimpleNamespace(dataset=SimpleNamespace(metainfo=meta))


def _runner(model, val=True):
    runner = SimpleNamespace(model=model, train_dataloader=_loader(TRAIN),
                             test_dataloader=_loader(VAL), _val_loop=None, _train_loop=None)
    if val:
        runner._val_loop = object()
        runner.val_dataloader = _loader(VAL)
    return runner


def test_hook_gives_each_loop_its_data_sets_classes():
    model, hook = _Model(), VocabularyHook()
    runner = _runner(model)
    hook.before_train(runner)   # training classes, and evaluation classes ahead of time
    assert model.calls == [('train', ('cat', 'dog')), ('test', ('cat', 'dog', 'zebra'))]
    model.calls.clear()
    hook.before_val(runner)
    hook.before_test(runner)
    assert model.calls == [('test', ('cat', 'dog', 'zebra'))] * 2
    model.calls.clear()
    hook.before_train(_runner(model, val=False))   # no validation loop: nothing else asked
    assert model.calls == [('train', ('cat', 'dog'))]


def test_fixed_vocabulary_is_kept_but_must_match_the_labels():
    hook = VocabularyHook()
    model = _Model(fixed_train=('a', 'b'), fixed_test=('a', 'b', 'c'))
    hook.before_train(_runner(model))
    assert model.calls == []                                 # both fixed and matching
    model = _Model(fixed_test=('a', 'b'))
    with pytest.raises(VocabularyError, match='configured test vocabulary has 2 classes but the '
                                              'validation data set has 3'):
        hook.before_val(_runner(model))


def test_model_without_the_protocol_is_a_clear_error():
    runner = _runner(SimpleNamespace())
    with pytest.raises(VocabularyError, match='set_dataset_vocabulary'):
        VocabularyHook().before_train(runner)


@pytest.mark.parametrize('scope', ['vitamin_dense', 'mmdet', 'mmseg'])
def test_hook_is_reachable_from_every_scope(scope):
    with DefaultScope.overwrite_default_scope(scope):
        hook = HOOKS.build(dict(type='VocabularyHook'))
    assert isinstance(hook, VocabularyHook)


def test_vocabulary_from_metainfo_merges_synonyms():
    vocab = vocabulary_from_metainfo(TRAIN)
    assert vocab.classes == (('cat', 'kitty'), ('dog', 'puppy', 'hound'))
    with pytest.raises(VocabularyError, match="no 'classes'"):
        vocabulary_from_metainfo({}, 'the training data set')
    with pytest.raises(VocabularyError, match="1 'synonyms' entries for 2 classes"):
        vocabulary_from_metainfo(dict(classes=('a', 'b'), synonyms=(('a',),)))
