# OWL-style open-vocabulary detection on OV-LVIS (LVIS v1; rare classes novel) with
# ViTamin-L-336, trained as OWL-ViT trains on LVIS base (scenic configs/clip_l14.py): both
# towers fine-tuned (image tower and heads at lr 2e-5, text tower at 2e-6, no weight decay,
# cosine decay), OWL's matching and losses (configs/_base_/models/owl_vitamin.py). Reports
# AP, AP_r (ov_lvis/bbox_APr), AP_c, AP_f; top 300 (token, class) pairs per image, no NMS.
# Window 336 at stride 336 in training and at test, one 896 px square box frame, large-scale
# jitter, repeat-factor sampling; 8 GPUs x 2 images.
# Training queries are the 866 base (common + frequent) classes with LVIS' federated loss:
# an image's class loss covers its positive classes, its verified-absent classes
# (neg_category_ids) and random base classes up to 50 negatives (OWL's
# add_random_negative_labels(total_num_negatives=50); drawn by image count ** 0.5 as Detic),
# never its not-exhaustively-annotated classes. A trainable text tower encodes only the
# classes a batch uses (one random prompt each, as OWL).
#
# Differences from OWL kept on purpose: see owl_vitamin_l_ovcoco.py.
#
# Recipe, not a reproduced result: no LVIS data or GPU was available to train it here.
_base_ = [
    '../_base_/models/owl_vitamin.py',
    '../_base_/datasets/ov_lvis_detection.py',
    '../_base_/default_runtime.py',
]
image_size = (896, 896)

model = dict(
    federated_loss=True,
    federated_negatives=50,
    negative_freq_power=0.5,
    # no pseudo-negatives from a name pool: the random base classes are the negatives, and
    # the rare (novel) classes never become queries
    negative_vocabulary=None,
    num_negatives=0,
    test_cfg=dict(score_thr=0.0, max_per_img=300, nms_pre=3000, nms_iou=None),
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

# OWL's optimiser: no weight decay, text tower at a tenth of the image tower's lr
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-5, betas=(0.9, 0.999), weight_decay=0.0),
    paramwise_cfg=dict(custom_keys={'text_encoder': dict(lr_mult=0.1)}),
    clip_grad=dict(max_norm=1.0, norm_type=2))
max_iters = 90000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=1000, end=max_iters, eta_min=0.0),
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
