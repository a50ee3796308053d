# COCO panoptic 2017 (133 classes: 80 things, 53 stuff): FC-CLIP's training set.
# Layout under data_root (data/coco/):
#   train2017/*.jpg, val2017/*.jpg
#   annotations/panoptic_{train,val}2017.json, annotations/panoptic_{train,val}2017/*.png
#   annotations/instances_val2017.json (only for mask AP)
# Labels: things first, then stuff, 255 = void (mmdet's convention).
dataset_type = 'OpenVocabCocoPanopticDataset'
data_root = 'data/coco/'
backend_args = None
coco_train_crop = (1024, 1024)   # large-scale jitter crop (the ViTamin-L recipe uses 1344)
coco_test_scale = (1333, 800)

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='mmdet.LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True,
         backend_args=backend_args),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.RandomResize', scale=coco_train_crop, ratio_range=(0.1, 2.0),
         resize_type='mmdet.Resize', keep_ratio=True),
    dict(type='mmdet.RandomCrop', crop_size=coco_train_crop, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='mmdet.PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=coco_test_scale, keep_ratio=True),
    dict(type='mmdet.LoadPanopticAnnotations', backend_args=backend_args),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'seg_map_path', 'segments_info', 'ori_shape',
                    'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='mmdet.AspectRatioBatchSampler'),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/panoptic_train2017.json',
                 data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=32),
                 pipeline=train_pipeline, backend_args=backend_args))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/panoptic_val2017.json',
                 data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
                 test_mode=True, pipeline=test_pipeline, backend_args=backend_args))
test_dataloader = val_dataloader

# PQ (panopticapi through mmdet) and mIoU (mmseg) from the panoptic annotations.
val_evaluator = [
    dict(type='OpenVocabPanopticMetric'),
    dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU']),
]
test_evaluator = val_evaluator
# Mask AP (pycocotools through mmdet's CocoMetric) for models that output pred_instances.
coco_instance_metric = dict(type='OpenVocabCocoMetric', metric='segm',
                            ann_file=data_root + 'annotations/instances_val2017.json')
