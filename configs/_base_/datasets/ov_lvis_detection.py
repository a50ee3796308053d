# OV-LVIS detection data (LVIS v1): train without the rare-class boxes, evaluate AP / AP_r / AP_c /
# AP_f. Rare (novel) classes are read from the 'frequency' field of the LVIS json itself.
#
# Expected layout (as mmdet's LVIS v1 configs; train2017 / val2017 are the COCO 2017 images,
# e.g. symlinks to data/coco/train2017 and data/coco/val2017):
#   data/lvis_v1/annotations/lvis_v1_train.json
#   data/lvis_v1/annotations/lvis_v1_val.json
#   data/lvis_v1/train2017/*.jpg
#   data/lvis_v1/val2017/*.jpg
#
# Training pipeline: large-scale jitter at 896, as F-ViT / OWL-ViT; the model's data
# preprocessor pads to 896x896. Repeat-factor sampling (ClassBalancedDataset, threshold 1e-3)
# is LVIS' standard long-tail remedy; its repeat factors only see base-class labels.
dataset_type = 'OVLVISDataset'
data_root = 'data/lvis_v1/'
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
        type='ClassBalancedDataset',
        oversample_thr=1e-3,
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='annotations/lvis_v1_train.json',
            data_prefix=dict(img=''),
            class_subset='base',  # rare-class boxes are never seen in training
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            pipeline=train_pipeline,
            backend_args=backend_args)))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/lvis_v1_val.json',
        data_prefix=dict(img=''),
        class_subset='all',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# Keys: ov_lvis/bbox_APr (novel = rare), bbox_AP, bbox_APc, bbox_APf, bbox_AP_novel, bbox_AP_base
val_evaluator = dict(
    type='OVLVISMetric',
    ann_file=data_root + 'annotations/lvis_v1_val.json',
    metric='bbox',
    backend_args=backend_args)
test_evaluator = val_evaluator
