# UperNet with a ViTamin-B backbone on ADE20K (150 classes), as a stock
# MMSegmentation 1.x config: it inherits mmseg's own base configs (shipped in
# the mmseg package, hence 'mmseg::'), runs with mmseg's default scope, and
# swaps the backbone. ViTamin is hierarchical (two MBConv stages at strides 4
# and 8, ViT tokens at 16, max-pooled to 32), so UperNet takes its four maps
# directly, without the MultiLevelNeck plain ViTs need.
# Recipe after mmseg's ConvNeXt-B UperNet: crop 512, AdamW lr 1e-4 wd 0.05,
# layer-wise lr decay 0.9, poly schedule, 160k iterations at batch 16, AMP.
#
#   python tools/train.py configs/mmseg/upernet_vitamin-b_8xb2-160k_ade20k-512x512.py
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['vitamin_dense'], allow_failed_imports=False)
runner_type = 'vitamin_dense.VitaminRunner'

crop_size = (512, 512)
# ViTaminBackbone(...).output_shape() for ViTamin-B: s4 128, s8 256, s16 768,
# s32 768 (tests/test_mmseg_configs.py checks them against the backbone).
backbone_channels = [128, 256, 768, 768]
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(
        size=crop_size,
        # CLIP normalisation (= ViTaminBackbone.pixel_mean / pixel_std), RGB
        mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        bgr_to_rgb=True),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='ViTaminBackbone',
        model_name='ViTamin-B',
        weights='datacomp1b',
        frozen=False,
        out_levels=('s4', 's8', 's16', 's32'),
        with_clip_map=False,
        return_tuple=True,
        test_stride=112,            # overlapping windows at test time (224 px window)
        grad_checkpointing=True,    # fine-tuning memory bounded by the budget (per chunk)
        memory_budget_mb=4096),
    decode_head=dict(in_channels=backbone_channels, num_classes=150, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=backbone_channels[2], num_classes=150, norm_cfg=norm_cfg),
    # The backbone slides its own windows over any image size: whole-image inference.
    test_cfg=dict(mode='whole'))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='ViTaminLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.9),
    loss_scale='dynamic')

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, begin=1500, end=160000, eta_min=0.0, by_epoch=False),
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
