# Synthetic shapes, COCO-instances layout (things only: boxes + RLE masks), for
# detection and instance segmentation through mmdet's CocoDataset / CocoMetric.
#
# Generated deterministically into data_root on first use (SyntheticDetectionDataset,
# generate=True) or with `python tools/make_synthetic.py data/synthetic`.
# Layout under data_root: images/{train,val}/*.jpg, annotations/instances_{train,val}.json
# (the same files as synthetic_panoptic.py writes; the splits can be shared).
# Open-vocabulary split: synthetic_train_generator = dict(..., holdout='default').
dataset_type = 'SyntheticDetectionDataset'
data_root = 'data/synthetic/'
synthetic_image_size = 128
synthetic_train_generator = dict(num_images=200, image_size=synthetic_image_size, seed=0)
synthetic_val_generator = dict(num_images=50, image_size=synthetic_image_size, seed=0)
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.RandomResize', scale=(synthetic_image_size, synthetic_image_size),
         ratio_range=(0.75, 1.5), resize_type='mmdet.Resize', keep_ratio=True),
    dict(type='mmdet.RandomCrop', crop_size=(synthetic_image_size, synthetic_image_size),
         crop_type='absolute', recompute_bbox=True, allow_negative_crop=True),
    dict(type='mmdet.FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='mmdet.PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=(synthetic_image_size, synthetic_image_size), keep_ratio=True),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='mmdet.AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        generator=synthetic_train_generator,
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        generator=synthetic_val_generator,
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='mmdet.CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
