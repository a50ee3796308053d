"""MultiDatasetValLoop / MultiDatasetTestLoop: held-out sets, each under its own vocabulary.

A toy open-vocabulary model records the class lists it is handed and predicts
under its current test vocabulary; a toy metric checks that every set was
predicted under that set's classes. The loops must report each extra set's
metrics under ``<prefix>/``, their harmonic mean with the primary's as
``hmean`` (what ``save_best`` keeps the checkpoint by), give the model the
primary's classes back afterwards, and, before training, show the model every
evaluation set's classes (a detector keeps them out of its pseudo-negatives).
"""
import uuid

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from torch import nn

import vitamin_dense  # noqa: F401
from vitamin_dense.engine.config import build_runner
from vitamin_dense.engine.multi_dataset_loop import extra_dataloader_cfg, harmonic_mean
from vitamin_dense.errors import ConfigError
from vitamin_dense.registry import DATASETS, METRICS, MODELS


@MODELS.register_module(force=True)
class ToyOpenVocabModel(BaseModel):
    """Predicts, for each sample, the current test classes and the sample's value."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 1)
        self.calls = []
        self.test_classes = None

    def set_dataset_vocabulary(self, metainfo, mode):
        self.calls.append((mode, tuple(metainfo['classes'])))
        if mode == 'test':
            self.test_classes = tuple(metainfo['classes'])

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs)
        if mode == 'loss':
            return dict(loss=(self.lin(x) ** 2).mean())
        return [dict(classes=self.test_classes, value=float(v)) for v in x[:, 0]]


@DATASETS.register_module(force=True)
class ToyClassSet(torch.utils.data.Dataset):
    def __init__(self, classes, value, size=3, pipeline=None):
        self.metainfo = dict(classes=tuple(classes))
        self.value, self.size, self.pipeline = value, size, pipeline

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([self.value]), data_samples=None)


@METRICS.register_module(force=True)
class ToyVocabMetric(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        self.results += [(s['classes'], s['value']) for s in data_samples]

    def compute_metrics(self, results):
        right = all(c == tuple(self.dataset_meta['classes']) for c, _ in results)
        return dict(score=sum(v for _, v in results) / len(results), right_classes=float(right))


OWN = ('cat', 'dog')


def _cfg(tmp_path, extra, hmean=('toy/score', 'heldout/toy/score'), save_best=None):
    loader = dict(batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                  dataset=dict(type='ToyClassSet', classes=OWN, value=0.8, pipeline=['p']))
    cfg = dict(
        model=dict(type='ToyOpenVocabModel'), work_dir=str(tmp_path),
        experiment_name=f'toy_{uuid.uuid4().hex[:8]}', default_scope='vitamin_dense',
        runner_type='VitaminRunner', randomness=dict(seed=0),
        train_dataloader=dict(loader, sampler=dict(type='InfiniteSampler', shuffle=True)),
        train_cfg=dict(by_epoch=False, max_iters=2, val_interval=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        val_dataloader=loader, val_evaluator=dict(type='ToyVocabMetric'),
        val_cfg=dict(type='MultiDatasetValLoop', extra_datasets=extra, hmean_keys=list(hmean)),
        test_dataloader=loader, test_evaluator=dict(type='ToyVocabMetric'),
        test_cfg=dict(type='MultiDatasetTestLoop', extra_datasets=extra,
                      hmean_keys=list(hmean)),
        custom_hooks=[dict(type='VocabularyHook')],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2,
                                           save_best=save_best, rule='greater'),
                           logger=dict(type='LoggerHook', interval=1)))
    from mmengine.config import Config
    return Config(cfg)


HELD_OUT = [dict(prefix='heldout',
                 dataset=dict(type='ToyClassSet', classes=('zebra', 'okapi', 'tapir'), value=0.2))]


def test_each_set_is_scored_under_its_own_classes(tmp_path):
    runner = build_runner(_cfg(tmp_path, HELD_OUT))
    metrics = runner.val()
    assert metrics['toy/score'] == pytest.approx(0.8)
    assert metrics['heldout/toy/score'] == pytest.approx(0.2)
    assert metrics['toy/right_classes'] == 1 and metrics['heldout/toy/right_classes'] == 1
    assert metrics['hmean'] == pytest.approx(2 * 0.8 * 0.2 / (0.8 + 0.2))
    model = runner.model
    assert model.test_classes == OWN   # the primary's classes are back
    # the extra set took the primary's pipeline (its own data set otherwise)
    assert runner.val_loop.extra_sets[0].dataloader.dataset.pipeline == ['p']

    metrics = runner.test()
    assert set(metrics) == {'toy/score', 'toy/right_classes', 'heldout/toy/score',
                            'heldout/toy/right_classes', 'hmean'}


def test_training_shows_every_evaluation_vocabulary_and_keeps_the_best(tmp_path):
    runner = build_runner(_cfg(tmp_path, HELD_OUT, save_best='hmean'))
    runner.train()
    calls = runner.model.calls
    # before training: training classes, the held-out classes, then the primary's (last)
    assert calls[:3] == [('train', OWN), ('test', ('zebra', 'okapi', 'tapir')), ('test', OWN)]
    assert list((tmp_path).glob('best_hmean_iter_2.pth'))


def test_without_extra_sets_it_is_a_plain_validation(tmp_path):
    runner = build_runner(_cfg(tmp_path, [], hmean=()))
    assert set(runner.val()) == {'toy/score', 'toy/right_classes'}


@pytest.mark.parametrize('extra, hmean, message', [
    ([dict(dataset=HELD_OUT[0]['dataset'])], (), "needs a 'prefix'"),
    (HELD_OUT * 2, (), 'heldout is used twice'),
    ([dict(HELD_OUT[0], datasets=[])], (), 'unknown key.*datasets'),
    ([dict(prefix='x')], (), "give 'dataset'"),
    (HELD_OUT, ('toy/score', 'heldout/coco/bbox_mAP'), 'no metric heldout/coco/bbox_mAP'),
])
def test_config_mistakes_stop_with_one_line(tmp_path, extra, hmean, message):
    runner = build_runner(_cfg(tmp_path, extra, hmean=hmean))
    with pytest.raises(ConfigError, match=message):
        runner.val()


def test_extra_data_loader_config():
    primary = dict(batch_size=4, dataset=dict(type='A', pipeline=['p'], test_mode=True,
                                              ann_file='a.json', exclude_classes=('x', )))
    cfg = extra_dataloader_cfg(dict(dataset=dict(type='B', ann_file='b.json')), primary, 'w')
    # the loader and the pipeline come along, not the primary's data set settings
    assert cfg == dict(batch_size=4, dataset=dict(type='B', ann_file='b.json', pipeline=['p'],
                                                  test_mode=True))
    own = dict(type='B', pipeline=['q'], test_mode=False)
    assert extra_dataloader_cfg(dict(dataset=own), primary, 'w')['dataset'] == own
    whole = dict(batch_size=1, dataset=dict(type='C'))
    assert extra_dataloader_cfg(dict(dataloader=whole), primary, 'w') == whole
    assert harmonic_mean([0.5, 0.5]) == pytest.approx(0.5)
    assert harmonic_mean([0.9, 0.0]) == 0.0
