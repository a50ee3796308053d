# Synthetic shapes, COCO-panoptic layout (vitamin_dense.datasets.synthetic).
#
# The splits are generated deterministically into data_root on first use
# (SyntheticPanopticDataset, generate=True), or ahead of time with
#   python tools/make_synthetic.py data/synthetic --splits train:200,val:50
# Layout under data_root:
#   images/{train,val}/*.jpg
#   annotations/panoptic_{train,val}.json + annotations/panoptic_{train,val}/*.png
#   annotations/instances_{train,val}.json, annotations/semantic_{train,val}/*.png
# Labels: things first, then stuff; 255 = void (mmdet's panoptic convention).
# For an open-vocabulary split, hold classes out of training:
#   synthetic_train_generator = dict(..., holdout='default')   # star, sand
# and evaluate on the val split, which keeps every class.
dataset_type = 'SyntheticPanopticDataset'
data_root = 'data/synthetic/'
synthetic_image_size = 128
synthetic_train_generator = dict(num_images=200, image_size=synthetic_image_size, seed=0)
synthetic_val_generator = dict(num_images=50, image_size=synthetic_image_size, seed=0)
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='mmdet.LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True,
         backend_args=backend_args),
    dict(type='mmdet.RandomFlip', prob=0.5),
    # large-scale jitter, as the Mask2Former / FC-CLIP recipes
    dict(type='mmdet.RandomResize', scale=(synthetic_image_size, synthetic_image_size),
         ratio_range=(0.5, 2.0), resize_type='mmdet.Resize', keep_ratio=True),
    dict(type='mmdet.RandomCrop', crop_size=(synthetic_image_size, synthetic_image_size),
         crop_type='absolute', recompute_bbox=True, allow_negative_crop=True),
    dict(type='mmdet.PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=(synthetic_image_size, synthetic_image_size), keep_ratio=True),
    dict(type='mmdet.LoadPanopticAnnotations', backend_args=backend_args),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'seg_map_path', 'segments_info', 'ori_shape',
                    'img_shape', 'scale_factor')),
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
        filter_cfg=dict(filter_empty_gt=False),
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

# PQ / SQ / RQ (all, things, stuff; panopticapi's matching through mmdet) and mIoU
# (mmseg's IoUMetric), both split into seen / unseen classes when train_vocabulary
# names the training classes (a derived config redefines val_evaluator, e.g. with
# train_vocabulary='dataset:synthetic_seen' for a holdout='default' training split).
# The panoptic metric reads the ground truth PackDetInputs packs (seg_map_path,
# segments_info).
val_evaluator = [
    dict(type='OpenVocabPanopticMetric', train_vocabulary=None),
    dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'], train_vocabulary=None),
]
test_evaluator = val_evaluator
# Instance mask AP (pycocotools through mmdet's CocoMetric), for models that output
# pred_instances: add it with `val_evaluator = [..., synthetic_instance_metric]`.
synthetic_instance_metric = dict(
    type='OpenVocabCocoMetric', ann_file=data_root + 'annotations/instances_val.json',
    metric='segm', train_vocabulary=None)
