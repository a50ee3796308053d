# OV-LVIS with instance masks, for detectors with a mask head (F-ViT / F-VLM report mask AP_r).
# Same layout and split as ov_lvis_detection.py; masks are loaded as bitmaps, and the evaluator
# reports box and mask AP (ov_lvis/segm_APr is the benchmark number).
_base_ = './ov_lvis_detection.py'

train_pipeline = [
    dict(type='mmdet.LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='mmdet.RandomResize', scale={{_base_.image_size}}, ratio_range=(0.1, 2.0),
         keep_ratio=True, resize_type='mmdet.Resize'),
    dict(type='mmdet.RandomCrop', crop_type='absolute_range', crop_size={{_base_.image_size}},
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='mmdet.FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.PackDetInputs'),
]
test_pipeline = [
    dict(type='mmdet.LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='mmdet.Resize', scale={{_base_.image_size}}, keep_ratio=True),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
