# Sliding F-ViT, ViTamin-L-336, OV-COCO (48 base classes for training; AP50 on the
# 17 novel classes is the benchmark number: 37.5 published, ViT-L/14 36.1).
# Published recipe (ViTamin's vitamin_fvit, MMDetection 2.x): input 896 with
# large-scale jitter (test: longer side 896, padded to 896 x 896), frozen
# ViTamin-L (window 336, stride 168, the released window placement),
# AdamW lr 1e-4 wd 0.1, grad clip 1.0, batch 64 (8 GPUs x 8), 3 epochs, fp16,
# linear warm-up 250 iterations, no decay; test-time ensemble alpha 0.1,
# beta 0.8, CLIP temperature 75; background loss weight 0.6.
#
#   torchrun --nproc_per_node=8 tools/train.py configs/ov_det/fvit_vitamin_l_ovcoco.py \
#       --launcher pytorch
#   python tools/test.py configs/ov_det/fvit_vitamin_l_ovcoco.py work_dirs/.../epoch_3.pth
# Reports ov_coco/bbox_AP50_novel, bbox_AP50_base, bbox_AP50_all.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/ov_coco_detection.py',
    '../_base_/models/sliding_fvit_vitamin_l.py',
]
image_size = (896, 896)
model = dict(
    data_preprocessor=dict(batch_augments=[dict(type='BatchFixedSizePad', size=image_size)]))

# The model follows the data set's classes: base classes in training, all 65 in evaluation.
custom_hooks = [dict(type='VocabularyHook')]

# As the data set config's, except that LoadImageFromFile carries no scope prefix:
# mmdet's DetInferencer finds the image loader by that name.
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='mmdet.Resize', scale=image_size, keep_ratio=True),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader


train_dataloader = dict(batch_size=8, num_workers=8)
max_epochs = 3
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale=512.0,
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
]
auto_scale_lr = dict(enable=False, base_batch_size=64)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=3),
    visualization=dict(type='mmdet.DetVisualizationHook'))
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
