# OWL-style open-vocabulary detection on OV-COCO with a frozen ViTamin-L-336:
# train on the 48 base classes, report AP50 on the 17 novel (ov_coco/bbox_AP50_novel), 48 base
# and all 65. Window 336 (no overlap in training, stride 224 at test), input 896 with
# large-scale jitter (0.1-2.0), AdamW; 8 GPUs x 2 images.
#
#   torchrun --nproc_per_node=8 tools/train.py configs/ov_det/owl_vitamin_l_ovcoco.py \
#       --launcher pytorch
#   python tools/test.py configs/ov_det/owl_vitamin_l_ovcoco.py work_dirs/.../iter_60000.pth
#
# Recipe, not a reproduced result: no COCO data or GPU was available to train it here.
_base_ = [
    '../_base_/models/owl_vitamin.py',
    '../_base_/datasets/ov_coco_detection.py',
    '../_base_/default_runtime.py',
]
image_size = (896, 896)

model = dict(
    data_preprocessor=dict(
        batch_augments=[dict(type='mmdet.BatchFixedSizePad', size=image_size)]),
    # pseudo-negatives (OWL-ViT): LVIS names; every OV-COCO name (base and novel, with the
    # evaluation data set's synonyms) is removed from the pool, so novel names never train
    negative_vocabulary='dataset:lvis',
    num_negatives=32,
    test_cfg=dict(score_thr=0.0, max_per_img=100, nms_iou=0.5),
)

train_dataloader = dict(batch_size=2, num_workers=4)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0, norm_type=2))
max_iters = 60000  # ~10 epochs of the ~107k base-class images at batch 16
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=1000, end=max_iters, eta_min=1e-6),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3,
                    save_best='ov_coco/bbox_AP50_novel', rule='greater'),
    visualization=dict(type='mmdet.DetVisualizationHook', draw=False, score_thr=0.3),
)
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
