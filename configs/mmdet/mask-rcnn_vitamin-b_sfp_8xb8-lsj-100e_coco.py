# Mask R-CNN with a ViTamin-B backbone and ViTDet's simple feature pyramid, on
# COCO instances, as a stock MMDetection 3.x config: it inherits mmdet's own
# base configs (shipped inside the mmdet package, hence the 'mmdet::' prefix),
# runs with mmdet's default scope, and only swaps backbone and neck.
# Recipe after ViTDet-B (LSJ 1024, AdamW lr 1e-4 wd 0.1, layer decay 0.7,
# batch 64, 100 epochs), with ViTamin's CLIP pixel normalisation.
#
#   python tools/train.py configs/mmdet/mask-rcnn_vitamin-b_sfp_8xb8-lsj-100e_coco.py
#   (or MMDetection's own tools/train.py: custom_imports registers ViTamin)
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
]
custom_imports = dict(imports=['vitamin_dense'], allow_failed_imports=False)
# Weights-only-safe, atomic checkpoints (torch 2.13); 'vitamin_dense.' reaches
# our registry from mmdet's default scope.
runner_type = 'vitamin_dense.VitaminRunner'

image_size = (1024, 1024)
# ViTaminBackbone(...).output_shape() for ViTamin-B: s4 128, s8 256, s16 768,
# s32 768 channels; the simple pyramid is built from s16 alone.
# (tests/test_mmdet_configs.py checks these numbers against the backbone.)
backbone_channels = 768
norm = 'LN2d'  # vitamin_dense's channel LayerNorm, registered for mmcv's build_norm_layer
model = dict(
    data_preprocessor=dict(
        # CLIP normalisation, 0-255 scale, RGB (= ViTaminBackbone.pixel_mean / pixel_std)
        mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _delete_=True,
        type='ViTaminBackbone',
        model_name='ViTamin-B',
        weights='datacomp1b',
        frozen=False,               # fine-tuned, with layer-wise lr decay below
        out_levels=('s16', ),
        with_clip_map=False,
        return_tuple=True,
        grad_checkpointing=True,    # fine-tuning memory bounded by the budget (per chunk)
        memory_budget_mb=4096),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=backbone_channels,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5,
        norm=norm),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=dict(type=norm)),
        mask_head=dict(norm_cfg=dict(type=norm))))

train_dataloader = dict(batch_size=8, num_workers=4)

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    constructor='ViTaminLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.7),
    clip_grad=None)

max_epochs = 25  # x RepeatDataset(times=4) in the base = 100 COCO epochs
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[22, 24], gamma=0.1),
]
auto_scale_lr = dict(base_batch_size=64)
