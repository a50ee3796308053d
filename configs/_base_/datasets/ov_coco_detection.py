# OV-COCO detection data: train on the 48 base classes; evaluate AP50 on 17 novel / 48 base / 65
# all classes.
#
# Expected layout (the stock COCO 2017 files; OVR-CNN's instances_train2017_seen_2.json and
# instances_val2017_all_2.json give the same data and can replace the two json files):
#   data/coco/annotations/instances_train2017.json
#   data/coco/annotations/instances_val2017.json
#   data/coco/train2017/*.jpg
#   data/coco/val2017/*.jpg
#
# Training pipeline: large-scale jitter at 896 (resize by 0.1-2.0, crop 896x896), as F-ViT and
# the OWL-ViT recipes. Padding to 896x896 is the model's data preprocessor's job, e.g.
#   data_preprocessor=dict(..., batch_augments=[dict(type='mmdet.BatchFixedSizePad',
#                                                     size=image_size)])
# Test: resize the longer side to 896 (keep ratio); predictions are mapped back to the
# original image by the model, and the metric reads original-image coordinates.
dataset_type = 'OVCocoDataset'
data_root = 'data/coco/'
image_size = (896, 896)
backend_args = None

train_pipeline = [
    dict(type='mmdet.LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='mmdet.RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True,
         resize_type='mmdet.Resize'),  # mmdet's Resize (boxes, masks), not mmcv's
    dict(type='mmdet.RandomCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='mmdet.FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.PackDetInputs'),
]
test_pipeline = [
    dict(type='mmdet.LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=image_size, keep_ratio=True),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        class_subset='base',  # novel-class boxes are never seen in training
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        class_subset='all',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# Keys: ov_coco/bbox_AP50_novel (the benchmark number), bbox_AP50_base, bbox_AP50_all, ...
val_evaluator = dict(
    type='OVCocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric='bbox',
    backend_args=backend_args)
test_evaluator = val_evaluator
