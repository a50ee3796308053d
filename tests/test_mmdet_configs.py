"""ViTamin in stock MMDetection configs: build, loss/backward/predict, Runner, DetInferencer."""
import os

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

import vitamin_dense  # noqa: F401
from vitamin_dense.backbones import ViTaminBackbone
from vitamin_dense.engine.config import build_runner, load_config
from vitamin_dense.errors import ConfigError

from _mmlab_fake_data import class_names, tiny_backbone_overrides, write_coco_instances
from tests.helpers.mmdet_flow import mmdet_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASK_RCNN = os.path.join(ROOT, 'configs/mmdet/mask-rcnn_vitamin-b_sfp_8xb8-lsj-100e_coco.py')
FASTER_RCNN = os.path.join(ROOT, 'configs/mmdet/faster-rcnn_vitamin-b_sfp_8xb8-lsj-100e_coco.py')


def _tiny_overrides(with_mask: bool) -> dict:
    opts = dict(tiny_backbone_overrides())
    opts.update({'model.neck.in_channels': 64, 'model.neck.out_channels': 32,
                 'model.rpn_head.in_channels': 32, 'model.rpn_head.feat_channels': 32,
                 'model.roi_head.bbox_roi_extractor.out_channels': 32,
                 'model.roi_head.bbox_head.in_channels': 32,
                 'model.roi_head.bbox_head.conv_out_channels': 32,
                 'model.roi_head.bbox_head.fc_out_channels': 64,
                 'model.roi_head.bbox_head.num_classes': len(class_names()),
                 'model.data_preprocessor.batch_augments': None})
    if with_mask:
        opts.update({'model.roi_head.mask_roi_extractor.out_channels': 32,
                     'model.roi_head.mask_head.in_channels': 32,
                     'model.roi_head.mask_head.conv_out_channels': 32,
                     'model.roi_head.mask_head.num_classes': len(class_names())})
    return opts


STOCK_STYLE = """
default_scope = 'mmdet'
custom_imports = dict(imports=['vitamin_dense'], allow_failed_imports=False)
model = dict(
    type='RetinaNet',
    data_preprocessor=dict(type='DetDataPreprocessor', bgr_to_rgb=True),
    backbone=dict(type='ViTaminBackbone', model_name='ViTamin-Tiny', weights=None,
                  out_levels=('s8', 's16', 's32'), with_clip_map=False, return_tuple=True),
    neck=dict(type='FPN', in_channels=[32, 64, 64], out_channels=32, start_level=0,
              add_extra_convs='on_output', num_outs=5),
    bbox_head=dict(
        type='RetinaHead', num_classes=3, in_channels=32, feat_channels=32,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=3,
                              ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True),
        loss_bbox=dict(type='L1Loss')),
    test_cfg=dict(nms_pre=100, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=10))
"""


def test_stock_style_config_builds_with_mmdets_registry(tmp_path):
    """A plain mmdet config file (default scope mmdet, custom_imports) naming ViTaminBackbone."""
    from mmdet.registry import MODELS
    path = tmp_path / 'retinanet_vitamin_tiny.py'
    path.write_text(STOCK_STYLE)
    cfg = Config.fromfile(str(path))  # imports vitamin_dense through custom_imports
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'ViTaminBackbone'
    feats = model.extract_feat(torch.randn(1, 3, 96, 128))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2, 1]


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'vitamin_dense'])
def test_neck_and_norm_reachable_from_every_scope(scope):
    """Unprefixed where they belong (mmdet, ours), with our prefix elsewhere (mmseg)."""
    from mmcv.cnn import build_norm_layer
    from mmengine.registry import MODELS
    prefix = 'vitamin_dense.' if scope == 'mmseg' else ''
    with DefaultScope.overwrite_default_scope(scope):
        neck = MODELS.build(dict(type=f'{prefix}SimpleFeaturePyramid', in_channels=64,
                                 out_channels=16))
        _, norm = build_norm_layer(dict(type=f'{prefix}LN2d'), 16)
        backbone = MODELS.build(dict(type='ViTaminBackbone', model_name='ViTamin-Tiny',
                                     weights=None, out_levels=('s16',), return_tuple=True))
    assert type(norm).__name__ == 'LayerNorm2d'
    outs = neck(backbone(torch.randn(1, 3, 64, 96)))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]


def test_neck_channel_mismatch_is_explained():
    from vitamin_dense.models.necks import SimpleFeaturePyramid
    neck = SimpleFeaturePyramid(in_channels=768)
    with pytest.raises(ConfigError, match='neck.in_channels=64'):
        neck((torch.randn(1, 64, 4, 4),))


def test_config_channels_match_the_backbone():
    """The channel numbers written in the configs are what ViTamin-B reports."""
    cfg = Config.fromfile(MASK_RCNN)
    backbone = ViTaminBackbone('ViTamin-B', None, out_levels=('s16',), return_tuple=True)
    assert backbone.output_shape()['s16'].channels == cfg.backbone_channels == \
        cfg.model.neck.in_channels
    assert backbone.out_channels == [cfg.model.neck.in_channels]
    # The data preprocessor normalises the way the backbone was pretrained.
    assert cfg.model.data_preprocessor.mean == pytest.approx(list(backbone.pixel_mean))
    assert cfg.model.data_preprocessor.std == pytest.approx(list(backbone.pixel_std))


def _runner_cfg(path: str, tmp_path, with_mask: bool):
    data = write_coco_instances(str(tmp_path / 'data'), num_images=4)
    cfg = load_config(path, _tiny_overrides(with_mask))
    dataset = dict(type='CocoDataset', data_root=data['root'], ann_file=data['ann_file'],
                   data_prefix=dict(img='images/'), metainfo=dict(classes=class_names()))
    train_pipeline = [dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask),
                      dict(type='RandomFlip', prob=0.5), dict(type='PackDetInputs')]
    test_pipeline = [dict(type='LoadImageFromFile'),
                     dict(type='Resize', scale=(128, 96), keep_ratio=True),
                     dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask),
                     dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                                           'img_shape', 'scale_factor'))]
    cfg.train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                                sampler=dict(type='DefaultSampler', shuffle=True),
                                dataset=dict(dataset, pipeline=train_pipeline,
                                             filter_cfg=dict(filter_empty_gt=True)))
    cfg.val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                              drop_last=False, sampler=dict(type='DefaultSampler', shuffle=False),
                              dataset=dict(dataset, pipeline=test_pipeline, test_mode=True))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = dict(type='CocoMetric', ann_file=data['ann_file'],
                             metric=['bbox', 'segm'] if with_mask else 'bbox')
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                                end=2)]
    cfg.optim_wrapper.type = 'OptimWrapper'  # CPU: no AMP
    cfg.optim_wrapper.pop('loss_scale', None)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2, by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook')
    cfg.log_processor = dict(by_epoch=False)
    cfg.work_dir = str(tmp_path / 'work')
    return cfg, data


@pytest.mark.parametrize('path,with_mask', [(MASK_RCNN, True), (FASTER_RCNN, False)],
                         ids=['mask-rcnn', 'faster-rcnn'])
def test_two_runner_iterations_then_inferencer(path, with_mask, tmp_path):
    from mmdet.apis import DetInferencer
    from skimage import data as skdata
    cfg, _ = _runner_cfg(path, tmp_path, with_mask)
    runner = build_runner(cfg)
    qkv = runner.model.backbone.visual.trunk.blocks[0].attn.qkv.weight
    before = qkv.detach().clone()
    runner.train()
    assert runner.iter == 2
    assert not torch.equal(before, qkv.detach())  # fine-tuned through the sliding window
    lrs = {g['group_name']: g['lr'] for g in runner.optim_wrapper.optimizer.param_groups}
    assert any(name.startswith('layer_0') for name in lrs)  # layer-decay groups are in use
    ckpt = os.path.join(cfg.work_dir, 'iter_2.pth')
    assert os.path.isfile(ckpt)
    metrics = runner.val_loop.run()
    assert 'coco/bbox_mAP' in metrics

    # MMDetection's own inferencer on a real photo, from the config and the checkpoint.
    cfg.model.test_cfg.rcnn.score_thr = 0.0
    inferencer = DetInferencer(model=cfg, weights=ckpt, device='cpu', show_progress=False)
    photo = skdata.chelsea()[:, :, ::-1].copy()  # BGR, as mmcv reads images
    result = inferencer(photo, return_datasamples=True, no_save_vis=True)
    pred = result['predictions'][0].pred_instances
    assert pred.bboxes.shape[1] == 4 and len(pred) > 0
    assert (pred.bboxes[:, 2] <= photo.shape[1] + 1e-3).all()
    if with_mask:
        assert tuple(pred.masks.shape[-2:]) == photo.shape[:2]
    assert np.isfinite(pred.scores.numpy()).all()


# ------------------------------------------- checkpoints between mmdet's runner and ours
def _stock_flow_cfg(path, tmp_path, work_dir, max_iters, runner):
    cfg, _ = _runner_cfg(path, tmp_path, with_mask=path == MASK_RCNN)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # training only
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=False)
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    if runner == 'stock':
        cfg.pop('runner_type')  # a stock mmdet config: MMEngine's Runner
    return cfg


def test_a_run_of_mmdets_runner_resumes_and_loads_in_ours(tmp_path, caplog):
    """A Mask R-CNN trained by mmdet's own flow: resumed by our runner, and loaded
    through ``load_from`` from another directory."""
    stock = mmdet_train(_stock_flow_cfg(MASK_RCNN, tmp_path, tmp_path / 'stock', 1, 'stock'))
    assert type(stock).__name__ == 'Runner'
    ckpt = str(tmp_path / 'stock' / 'iter_1.pth')
    with pytest.raises(Exception):  # not loadable by torch's weights-only default alone
        torch.load(ckpt, weights_only=True)
    with caplog.at_level('WARNING', logger='vitamin_dense.engine.checkpoint'):
        resumed = mmdet_train(
            _stock_flow_cfg(MASK_RCNN, tmp_path, tmp_path / 'stock', 2, 'ours'), resume='auto')
        assert type(resumed).__name__ == 'VitaminRunner' and resumed.iter == 2
        assert len(resumed.message_hub.get_scalar('train/loss').data[0]) == 2  # history kept
        cfg = _stock_flow_cfg(MASK_RCNN, tmp_path, tmp_path / 'finetune', 1, 'ours')
        cfg.load_from = ckpt
        loaded = build_runner(cfg)
        loaded.load_or_resume()
    assert 'full unpickling' not in caplog.text  # both on the safe path
    for key, value in stock.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value)


def test_a_run_of_ours_resumes_in_mmdets_runner(tmp_path):
    ours = mmdet_train(_stock_flow_cfg(FASTER_RCNN, tmp_path, tmp_path / 'run', 1, 'ours'))
    assert type(ours).__name__ == 'VitaminRunner'
    ckpt = str(tmp_path / 'run' / 'iter_1.pth')
    # Resumed at its end: the stock runner holds exactly the saved weights and state.
    loaded = mmdet_train(_stock_flow_cfg(FASTER_RCNN, tmp_path, tmp_path / 'run', 1, 'stock'),
                          resume=ckpt)
    assert type(loaded).__name__ == 'Runner' and loaded.iter == 1
    for key, value in ours.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value)
    assert loaded.optim_wrapper.optimizer.state_dict()['state']  # AdamW moments came back
    # And it trains on from there.
    resumed = mmdet_train(_stock_flow_cfg(FASTER_RCNN, tmp_path, tmp_path / 'run', 2, 'stock'),
                           resume=ckpt)
    assert resumed.iter == 2
