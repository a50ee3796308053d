"""ViTamin in a stock MMSegmentation config: build, loss/backward/predict, Runner, inferencer."""
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import vitamin_dense  # noqa: F401
from vitamin_dense.backbones import ViTaminBackbone
from vitamin_dense.engine.config import build_runner, load_config

from _mmlab_fake_data import tiny_backbone_overrides, write_ade20k_like

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPERNET = os.path.join(ROOT, 'configs/mmseg/upernet_vitamin-b_8xb2-160k_ade20k-512x512.py')


def _tiny_overrides() -> dict:
    opts = dict(tiny_backbone_overrides())
    opts.update({'model.backbone.test_stride': 32,
                 'model.decode_head.in_channels': [16, 32, 64, 64],
                 'model.decode_head.channels': 32,
                 'model.decode_head.norm_cfg': dict(type='BN', requires_grad=True),
                 'model.auxiliary_head.in_channels': 64,
                 'model.auxiliary_head.channels': 16,
                 'model.auxiliary_head.norm_cfg': dict(type='BN', requires_grad=True),
                 'model.data_preprocessor.size': (96, 96)})
    return opts


def test_config_channels_match_the_backbone():
    cfg = Config.fromfile(UPERNET)
    backbone = ViTaminBackbone('ViTamin-B', None, out_levels=('s4', 's8', 's16', 's32'),
                               return_tuple=True)
    assert backbone.out_channels == cfg.backbone_channels == cfg.model.decode_head.in_channels
    assert cfg.model.auxiliary_head.in_channels == backbone.output_shape()['s16'].channels
    assert cfg.model.data_preprocessor.mean == pytest.approx(list(backbone.pixel_mean))


def test_loss_backward_predict_with_mmsegs_registry():
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    cfg = load_config(UPERNET, _tiny_overrides())
    init_default_scope(cfg.default_scope)
    assert cfg.default_scope == 'mmseg'
    model = MODELS.build(cfg.model)
    model.init_weights()
    images = [torch.randint(0, 255, (3, 96, 96), dtype=torch.uint8) for _ in range(2)]
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(96, 96), ori_shape=(96, 96)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 96, 96)))
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert model.backbone.visual.trunk.blocks[-1].attn.qkv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=images, data_samples=samples), False)
        out = model(**data, mode='predict')
    assert out[0].pred_sem_seg.data.shape == (1, 96, 96)
    assert out[0].seg_logits.data.shape == (150, 96, 96)


def test_two_runner_iterations_then_inferencer(tmp_path):
    from mmseg.apis import MMSegInferencer
    from skimage import data as skdata
    data = write_ade20k_like(str(tmp_path / 'ade'), num_images=2)
    cfg = load_config(UPERNET, _tiny_overrides())
    train_pipeline = [dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', reduce_zero_label=True),
                      dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]
    test_pipeline = [dict(type='LoadImageFromFile'),
                     dict(type='Resize', scale=(96, 96), keep_ratio=True),
                     dict(type='LoadAnnotations', reduce_zero_label=True),
                     dict(type='PackSegInputs')]
    dataset = dict(type='ADE20KDataset', data_root=data['root'])
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dict(dataset, pipeline=train_pipeline,
                     data_prefix=dict(img_path='images/training',
                                      seg_map_path='annotations/training')))
    cfg.val_dataloader = dict(
        batch_size=1, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(dataset, pipeline=test_pipeline,
                     data_prefix=dict(img_path='images/validation',
                                      seg_map_path='annotations/validation')))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.param_scheduler = [dict(type='PolyLR', power=1.0, begin=0, end=2, by_epoch=False)]
    cfg.optim_wrapper.type = 'OptimWrapper'
    cfg.optim_wrapper.pop('loss_scale', None)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2, by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    runner.train()
    assert runner.iter == 2
    ckpt = os.path.join(cfg.work_dir, 'iter_2.pth')
    assert os.path.isfile(ckpt)
    metrics = runner.val_loop.run()
    assert 'mIoU' in metrics

    inferencer = MMSegInferencer(model=cfg, weights=ckpt, device='cpu')
    photo = skdata.astronaut()[:, :, ::-1].copy()
    result = inferencer(photo, return_datasamples=True)
    assert result.pred_sem_seg.data.shape[-2:] == photo.shape[:2]
    assert int(result.pred_sem_seg.data.max()) < 150
