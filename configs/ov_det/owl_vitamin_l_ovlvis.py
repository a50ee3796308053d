# OWL-style open-vocabulary detection on OV-LVIS (LVIS v1; rare classes novel) with a frozen
# ViTamin-L-336: reports AP, AP_r (ov_lvis/bbox_APr), AP_c, AP_f. Window 336 (stride 224 at
# test), input 896 with large-scale jitter, AdamW, repeat-factor sampling; 8 GPUs x 2 images.
# Training queries are the 866 base (common + frequent) classes with LVIS' federated loss:
# an image's class loss covers its positive classes and its verified-absent classes
# (neg_category_ids), never unverified ones.
#
# Recipe, not a reproduced result: no LVIS data or GPU was available to train it here.
_base_ = [
    '../_base_/models/owl_vitamin.py',
    '../_base_/datasets/ov_lvis_detection.py',
    '../_base_/default_runtime.py',
]
image_size = (896, 896)

model = dict(
    data_preprocessor=dict(
        batch_augments=[dict(type='mmdet.BatchFixedSizePad', size=image_size)]),
    federated_loss=True,
    # no pseudo-negatives: 866 base classes plus each image's verified-absent classes already
    # give plenty of negatives, and other data sets' names (COCO's) are LVIS classes under
    # other names
    negative_vocabulary=None,
    num_negatives=0,
    test_cfg=dict(score_thr=0.0001, max_per_img=300, nms_pre=3000, nms_iou=0.5),
)

_lvis_train_pipeline = [
    dict(type='mmdet.LoadImageFromFile'),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='mmdet.RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True,
         resize_type='mmdet.Resize'),
    dict(type='mmdet.RandomCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='mmdet.FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='mmdet.RandomFlip', prob=0.5),
    # neg_labels feed the federated loss
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                    'flip_direction', 'neg_labels', 'not_exhaustive_labels')),
]
train_dataloader = dict(batch_size=2, num_workers=4,
                        dataset=dict(dataset=dict(pipeline=_lvis_train_pipeline)))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0, norm_type=2))
max_iters = 90000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=1000, end=max_iters, eta_min=1e-6),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=15000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3,
                    save_best='ov_lvis/bbox_APr', rule='greater'),
    visualization=dict(type='mmdet.DetVisualizationHook', draw=False, score_thr=0.3),
)
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
