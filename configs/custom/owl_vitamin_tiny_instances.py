# The fine-tuning template owl_vitamin_l_instances.py at toy scale (CPU, minutes, offline):
# the random-init ViTamin-Tiny (64 px windows) on 128 px images, and, as the held-out
# vocabulary, your own validation images scored on classes kept out of training.
# tests/test_finetune.py runs it on a COCO-format set of synthetic shapes written to
# data/my_dataset/ (python tools/make_synthetic.py data/my_dataset makes one):
#
#   python tools/train.py configs/custom/owl_vitamin_tiny_instances.py
#   python tools/test.py configs/custom/owl_vitamin_tiny_instances.py \
#       work_dirs/owl_vitamin_tiny_instances/best_hmean_iter_N.pth
#
# A random text tower knows no class it was not trained on, so the held-out mAP stays near
# 0 here: the run shows the mechanics (held-out classes kept out of training and out of the
# pseudo-negatives, evaluated and reported, best checkpoint by the harmonic mean), not
# CLIP's zero-shot transfer.
_base_ = './owl_vitamin_l_instances.py'

train_exclude_classes = ('star', )          # held out of training ...
heldout_classes = train_exclude_classes     # ... and scored on the validation images
image_size = (128, 128)

model = dict(
    backbone=dict(model_name='ViTamin-Tiny', weights=None, train_stride=64, test_stride=64,
                  memory_budget_mb=512, grad_checkpointing=False),
    frame_size=128,
    # a random text tower embeds bare names far more distinctly than 'a photo of a {}.'
    text_encoder=dict(model_name='ViTamin-Tiny', weights=None, templates=['{}'],
                      progress=False),
    # shape names that are not classes: 'star' is in the pool and must be kept out of it
    negative_vocabulary='star,hexagon,diamond,oval,arrow,heart',
    num_negatives=2,
    test_cfg=dict(score_thr=0.0, max_per_img=50, nms_iou=0.5),
)

# full 128 px crops (see configs/ov_det/owl_vitamin_tiny_synthetic.py: a random-init
# ViTamin's LayerNorms need no zero padding)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.RandomResize', scale=image_size, ratio_range=(1.0, 1.6),
         resize_type='mmdet.Resize', keep_ratio=True),
    dict(type='mmdet.RandomCrop', crop_size=image_size, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='mmdet.FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='mmdet.PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=image_size, keep_ratio=True),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                        dataset=dict(exclude_classes=train_exclude_classes,
                                     pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(exclude_classes=train_exclude_classes, pipeline=test_pipeline))
test_dataloader = val_dataloader

heldout = [dict(
    prefix='heldout',
    dataset=dict(type='CocoFormatDataset', data_root=_base_.data_root,
                 ann_file=_base_.val_ann_file, data_prefix=dict(img=_base_.val_img_dir),
                 metainfo=dict(classes=heldout_classes)),
    evaluator=dict(type='OpenVocabCocoMetric', metric='bbox',
                   ann_file=_base_.data_root + _base_.val_ann_file))]
val_cfg = dict(extra_datasets=heldout)
test_cfg = dict(extra_datasets=heldout)

# a toy learning rate for a random-init tower trained from scratch (not OWL's 2e-5)
max_iters = 300
val_interval = 300
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', by_epoch=False, milestones=[240], gamma=0.1),
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(logger=dict(type='LoggerHook', interval=50),
                     checkpoint=dict(interval=val_interval))
randomness = dict(seed=0)
