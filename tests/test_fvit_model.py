"""Sliding F-ViT model: build from configs, vocabulary handling, loss / predict, registration."""
import logging
import os

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import InstanceData

import vitamin_dense  # noqa: F401
from vitamin_dense.engine.config import load_config
from vitamin_dense.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, 'configs/ov_det/fvit_vitamin_tiny_synthetic.py')


def _build(scope='vitamin_dense', **overrides):
    cfg = load_config(TINY)
    model_cfg = cfg.model
    for dotted, value in overrides.items():
        node = model_cfg
        *path, leaf = dotted.split('.')
        for key in path:
            node = node[key]
        node[leaf] = value
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    model.init_weights()
    return model


@pytest.fixture(scope='module')
def model():
    return _build()


def _samples(labels_per_image, size=(96, 128)):
    samples = []
    for labels in labels_per_image:
        sample = DetDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size,
                                             batch_input_shape=size, scale_factor=(1.0, 1.0)))
        gt = InstanceData()
        n = len(labels)
        gt.bboxes = torch.tensor([[8.0 + 30 * i, 10.0, 40.0 + 30 * i, 60.0] for i in range(n)]
                                 ).reshape(n, 4)
        gt.labels = torch.tensor(labels, dtype=torch.long)
        sample.gt_instances = gt
        samples.append(sample)
    return samples


# mmdet's scope and ours; mmseg's registry has no detection parts
# (tests/test_openmmlab_registration.py).
@pytest.mark.parametrize('scope', ['mmdet', 'vitamin_dense'])
def test_fvit_modules_reachable_from_every_scope(scope):
    from mmengine.registry import HOOKS
    with DefaultScope.overwrite_default_scope(scope):
        with MODELS.switch_scope_and_registry(None) as registry:
            assert registry.scope == scope
            for name in ('SlidingFViT', 'FViTRoIHead', 'FViTBBoxHead', 'SlidingFViTAdapter',
                         'SimpleFeaturePyramid', 'LN2d', 'ViTaminBackbone'):
                assert registry.get(name) is not None, (scope, name)
        with HOOKS.switch_scope_and_registry(None) as registry:
            assert registry.get('VocabularyHook') is not None


def test_window_stride_is_snapped_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger='vitamin_dense.models.fvit.detector'):
        model = _build(window_stride=40)
    assert model.backbone.train_stride == model.backbone.test_stride == 32
    assert 'snapped to 32 px' in caplog.text
    # The published 168 of a 336 px window snaps to 160 (docs/ARCHITECTURE.md,
    # "Design notes").
    from vitamin_dense.backbones import snap_stride
    assert snap_stride(168) == 160


def test_adapter_and_neck_channels_follow_the_backbone(model):
    shapes = model.backbone.output_shape()
    assert model.adapter.inputs == ['s4', 's8', 'block0', 's16']
    assert model.adapter.strides == [4, 8, 16, 32]
    assert model.adapter.out_channels == [shapes['s4'].channels, shapes['s8'].channels,
                                          shapes['block0'].channels, shapes['s16'].channels]
    assert model.neck.in_channels == model.adapter.out_channels
    feats = model.extract_feat(torch.randn(1, 3, 96, 128))
    assert [tuple(f.shape[-2:]) for f in feats] == [(24, 32), (12, 16), (6, 8), (3, 4), (2, 2)]
    # Frozen trunk and text tower; trainable adapters, neck and heads.
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    assert all(p.requires_grad for p in model.adapter.parameters())
    assert model.roi_head.bbox_head.logit_scale.requires_grad
    assert float(model.roi_head.bbox_head.logit_scale.detach()) == 50.0


def test_config_errors():
    with pytest.raises(ConfigError, match='out_block_indices'):
        _build(**{'adapter.levels': [dict(input='block1', kind='identity')]})
    with pytest.raises(ConfigError, match='neck.in_channels'):
        _build(**{'neck.in_channels': [8, 8, 8, 8]})
    with pytest.raises(ConfigError, match='embedding widths differ'):
        _build(**{'roi_head.bbox_head.embed_dim': 32, 'roi_head.bbox_head.fc_out_channels': 32})
    with pytest.raises(ConfigError, match='return_tuple'):
        _build(**{'backbone.return_tuple': True})
    with pytest.raises(ConfigError, match='no vocabulary'):
        _build().loss(torch.randn(1, 3, 96, 128), _samples([[0]]))


def test_training_uses_base_classes_only(model):
    model.set_dataset_meta(dict(classes=('cat', 'dog', 'car', 'bus'),
                                base_classes=('cat', 'car'), novel_classes=('dog', 'bus')))
    model.train()
    inputs = torch.randn(2, 3, 96, 128)
    losses = model.loss(inputs, _samples([[0, 2], [2]]))
    head = model.roi_head.bbox_head
    assert head.num_classes == 2                        # softmax over cat, car + background
    assert head.loss_cls.class_weight == [1.0, 1.0, 0.6]
    total = sum(v.sum() if torch.is_tensor(v) else sum(v) for k, v in losses.items()
                if k.startswith('loss'))
    model.zero_grad()
    total.backward()
    assert model.adapter.levels[0][0].weight.grad is not None
    assert head.logit_scale.grad is not None
    assert model.get_extra_state() == {'seen_classes': ['car', 'cat']}
    # Novel-class annotations in training data are a leak, and are refused.
    with pytest.raises(ConfigError, match='novel classes'):
        model.loss(inputs, _samples([[1]]))


def test_predict_scores_all_classes_with_the_ensemble(model, monkeypatch):
    model.set_dataset_meta(dict(classes=('cat', 'dog', 'car', 'bus'),
                                base_classes=('cat', 'car'), novel_classes=('dog', 'bus')))
    model.eval()
    model.test_cfg.rcnn.score_thr = 0.0
    head = model.roi_head.bbox_head
    clip_inputs = []
    real_forward = head.forward
    monkeypatch.setattr(head, 'forward', lambda x, clip_embeddings=None: clip_inputs.append(
        clip_embeddings) or real_forward(x, clip_embeddings))
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 96, 128), _samples([[]]))
    # predict pools the dense CLIP map under every RoI for the ensemble
    assert clip_inputs and all(c is not None and c.shape[-1] == head.embed_dim
                               for c in clip_inputs)
    assert head.num_classes == 4
    assert head.novel_mask.tolist() == [False, True, False, True, False]
    pred = out[0].pred_instances
    assert len(pred) > 0 and int(pred.labels.max()) < 4
    assert (pred.scores <= 1.0).all()


def test_user_vocabulary_novel_unless_trained(model):
    """Without a split, classes the model was not trained on are novel at test time."""
    model.set_dataset_meta(dict(classes=('cat', 'car')))
    model.train()
    model.loss(torch.randn(1, 3, 96, 128), _samples([[0, 1]]))
    state = model.state_dict()
    assert state['_extra_state'] == {'seen_classes': ['car', 'cat']}
    fresh = _build()
    fresh.load_state_dict(state)
    fresh.set_vocabulary('cat, kitten; zebra; car')  # synonyms: "cat" and "kitten" are one class
    fresh.eval()
    with torch.no_grad():
        fresh.predict(torch.randn(1, 3, 64, 64), _samples([[]], size=(64, 64)))
    assert fresh.roi_head.bbox_head.novel_mask.tolist() == [False, True, False, False]
    assert fresh.dataset_meta['classes'] == ('cat', 'zebra', 'car')


def test_published_configs_keep_the_recipe():
    """The OV-COCO / OV-LVIS configs carry the published F-ViT recipe (checked, not trained)."""
    for name, beta, temperature, bg, epochs in (('fvit_vitamin_l_ovcoco.py', 0.8, 75.0, 0.6, 3),
                                                ('fvit_vitamin_l_ovlvis.py', 0.4, 50.0, 0.9, 48)):
        cfg = load_config(os.path.join(ROOT, 'configs/ov_det', name))
        model = cfg.model
        assert model.type == 'SlidingFViT' and model.window_stride == 168
        assert model.backbone.model_name == 'ViTamin-L-336' and model.backbone.frozen
        assert model.backbone.out_block_indices == (14, )
        head = model.roi_head.bbox_head
        assert (head.alpha, head.beta, head.clip_temperature) == (0.1, beta, temperature)
        assert head.temperature == 50.0 and head.background_weight == bg
        assert head.num_shared_convs == 4 and head.num_shared_fcs == 2
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.optim_wrapper.optimizer.lr == 1e-4
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.1
        assert cfg.train_cfg.max_epochs == epochs
        assert cfg.auto_scale_lr.base_batch_size == 64
        assert cfg.train_dataloader.batch_size * 8 == 64
        assert cfg.image_size == (896, 896)
        assert dict(type='VocabularyHook') in cfg.custom_hooks


_TINY_L_OVERRIDES = {
    'model.backbone.model_name': 'ViTamin-Tiny', 'model.backbone.weights': None,
    'model.backbone.out_block_indices': (0, ), 'model.window_stride': 40,
    'model.roi_head.bbox_head.embed_dim': 64, 'model.roi_head.bbox_head.fc_out_channels': 64,
    'model.roi_head.clip_roi_extractor.out_channels': 64,
    # fewer RoIs than the recipe's 1000 proposals / 512 samples: a CPU unit test
    'model.train_cfg.rpn_proposal.max_per_img': 100, 'model.train_cfg.rcnn.sampler.num': 64,
    'model.test_cfg.rpn.max_per_img': 50,
}


@pytest.mark.parametrize('name', ['fvit_vitamin_l_ovcoco.py', 'fvit_vitamin_l_ovlvis.py'])
def test_published_configs_build_and_run_at_tiny_size(name):
    """Every part of the OV-COCO / OV-LVIS configs, with ViTamin-Tiny in place of L."""
    from mmengine.model import revert_sync_batchnorm
    from mmdet.structures.mask import BitmapMasks
    cfg = load_config(os.path.join(ROOT, 'configs/ov_det', name), _TINY_L_OVERRIDES)
    cfg.model.data_preprocessor.batch_augments = None  # 896 px padding: too big for a unit test
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    assert model.neck.in_channels == [16, 32, 64, 64]
    with_mask = 'lvis' in name
    assert model.roi_head.with_mask == with_mask
    model.set_dataset_meta(dict(classes=('cat', 'dog', 'car'), base_classes=('cat', 'car')))
    samples = _samples([[0, 2], [2]])
    if with_mask:
        for sample in samples:
            masks = torch.zeros(len(sample.gt_instances), 96, 128, dtype=torch.uint8)
            for i, box in enumerate(sample.gt_instances.bboxes.int().tolist()):
                masks[i, box[1]:box[3], box[0]:box[2]] = 1
            sample.gt_instances.masks = BitmapMasks(masks.numpy(), 96, 128)
    model.train()
    data = model.data_preprocessor(dict(inputs=[torch.randint(0, 255, (3, 96, 128),
                                                              dtype=torch.uint8)] * 2,
                                        data_samples=samples), True)
    losses = model(**data, mode='loss')
    assert ('loss_mask' in losses) == with_mask
    model.eval()
    model.test_cfg.rcnn.score_thr = 0.0
    with torch.no_grad():
        out = model.predict(data['inputs'][:1], data['data_samples'][:1])
    pred = out[0].pred_instances
    assert len(pred) > 0
    if with_mask:
        assert tuple(pred.masks.shape[-2:]) == (96, 128)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['fvit_vitamin_l_ovcoco.py', 'fvit_vitamin_l_ovlvis.py'])
def test_published_configs_build_at_full_size(name):
    """The real ViTamin-L-336 models (random weights: about 20 s each on a CPU)."""
    cfg = load_config(os.path.join(ROOT, 'configs/ov_det', name), {'model.backbone.weights': None})
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    assert model.backbone.train_stride == model.backbone.test_stride == 168  # as released
    assert model.backbone.window_placement == 'published'
    assert model.adapter.inputs == ['s4', 's8', 'block14', 's16']
    assert model.neck.in_channels == [160, 320, 1024, 1024]
    assert model.text_encoder.embed_dim == model.backbone.clip_dim == 768
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 15e6 < trainable < 30e6  # adapters, FPN, RPN and RoI heads only


def test_hook_vocabularies_switch_between_loss_and_predict(model):
    """Through VocabularyHook, loss trains on the training classes and predict scores the test ones."""
    model.set_dataset_vocabulary(dict(classes=('cat', 'dog'), base_classes=('cat',)), 'train')
    model.set_dataset_vocabulary(dict(classes=('cat', 'dog', 'car')), 'test')
    model.train()
    model.loss(torch.randn(1, 3, 96, 128), _samples([[0]]))
    assert model.dataset_meta['classes'] == ('cat', 'dog')
    assert model.roi_head.bbox_head.num_classes == 1
    model.eval()
    with torch.no_grad():
        model.predict(torch.randn(1, 3, 96, 128), _samples([[]]))
    assert model.dataset_meta['classes'] == ('cat', 'dog', 'car')
    assert model.roi_head.bbox_head.num_classes == 3
    model.set_vocabulary('bird')     # an explicit vocabulary wins over the hook's
    with torch.no_grad():
        model.predict(torch.randn(1, 3, 96, 128), _samples([[]]))
    assert model.roi_head.bbox_head.num_classes == 1
