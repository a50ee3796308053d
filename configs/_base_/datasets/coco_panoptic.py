# COCO panoptic 2017 (133 classes: 80 things, 53 stuff): FC-CLIP's training set.
# Layout under data_root (data/coco/):
#   train2017/*.jpg, val2017/*.jpg
#   annotations/panoptic_{train,val}2017.json, annotations/panoptic_{train,val}2017/*.png
#   annotations/instances_val2017.json (only for mask AP)
# Labels: things first, then stuff, 255 = void (mmdet's convention).
dataset_type = 'OpenVocabCocoPanopticDataset'
data_root = 'data/coco/'
backend_args = None
# Training input, Mask2Former's / FC-CLIP's COCO panoptic large-scale jitter
# (coco_panoptic_new_baseline_dataset_mapper.py, INPUT.IMAGE_SIZE 1344 of the
# ViTamin-L recipe): horizontal flip, resize to fit the crop scaled by U(0.1, 2.0)
# (PIL, as detectron2), random crop, padded to the crop with grey 128 (labels: void)
# as its FixedSizeCrop.
coco_train_crop = (1344, 1344)
# Test input, the published ViTamin-L FC-CLIP's on every set: detectron2's
# ResizeShortestEdge with MIN_SIZE_TEST = MAX_SIZE_TEST = 1344 (mmdet's port of it),
# i.e. the longer side becomes 1344, PIL bilinear on the image decoded with PIL as
# detectron2 reads it; the model pads it with black to 1344 x 1344 before
# normalising (configs/ov_seg: the data preprocessor's pad_to_size).
test_size = 1344

train_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=backend_args),
    dict(type='mmdet.LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True,
         backend_args=backend_args),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.RandomResize', scale=coco_train_crop, ratio_range=(0.1, 2.0),
         resize_type='vitamin_dense.PILResize', keep_ratio=True),
    dict(type='mmdet.RandomCrop', crop_size=coco_train_crop, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='mmdet.FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True,
         keep_empty=False),
    dict(type='mmdet.Pad', size=coco_train_crop, pad_val=dict(img=(128, 128, 128), seg=255)),
    dict(type='mmdet.PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=backend_args),
    dict(type='mmdet.ResizeShortestEdge', scale=test_size, max_size=test_size,
         resize_type='vitamin_dense.PILResize'),
    dict(type='mmdet.LoadPanopticAnnotations', backend_args=backend_args),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'seg_map_path', 'segments_info', 'ori_shape',
                    'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/panoptic_train2017.json',
                 data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
                 filter_cfg=dict(filter_empty_gt=False),
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
