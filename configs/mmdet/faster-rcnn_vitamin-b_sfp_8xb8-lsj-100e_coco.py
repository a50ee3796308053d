# Faster R-CNN (boxes only) with ViTamin-B and the simple feature pyramid: the
# Mask R-CNN config without the mask branch, trained and evaluated on COCO boxes.
_base_ = './mask-rcnn_vitamin-b_sfp_8xb8-lsj-100e_coco.py'

image_size = (1024, 1024)
model = dict(
    type='FasterRCNN',
    data_preprocessor=dict(
        pad_mask=False,
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=False)]),
    roi_head=dict(mask_roi_extractor=None, mask_head=None))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator
