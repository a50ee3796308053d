# Fine-tune Sliding FC-CLIP (frozen ViTamin-L-336) on your own COCO-format instance masks
# (no stuff annotations: every class is a thing; the model outputs instances).
#
# Copy this file, edit the block below (paths only; the classes are the "categories" of
# your instances json, each annotation with a polygon or RLE "segmentation"), then
#
#   python tools/train.py configs/custom/fcclip_vitamin_l_instances.py
#   python tools/test.py configs/custom/fcclip_vitamin_l_instances.py \
#       work_dirs/fcclip_vitamin_l_instances/best_hmean_iter_N.pth
#
# What is frozen, the learning rate, the length and the held-out vocabulary: as
# fcclip_vitamin_l_panoptic.py (held out here: COCO val2017's 80 classes, mask AP).
# README "Fine-tune on your own data".
#
# ============================== edit here ==============================================
data_root = 'data/my_dataset/'                       # everything below is relative to it
train_ann_file = 'annotations/instances_train.json'  # COCO instances with masks
train_img_dir = 'images/train/'
val_ann_file = 'annotations/instances_val.json'
val_img_dir = 'images/val/'
synonyms = None              # {'mug': ['cup', 'coffee mug']} or a file "name, synonym, ..."
train_exclude_classes = ()   # categories never trained on (scored as held-out below)
# The held-out vocabulary (None: none). Default: COCO val2017 (80 classes), first 500
# images; your own images with the excluded classes instead: heldout_root, heldout_ann_file,
# heldout_img_dir = data_root, val_ann_file, val_img_dir; heldout_classes = train_exclude_classes
heldout_root = 'data/coco/'
heldout_ann_file = 'annotations/instances_val2017.json'
heldout_img_dir = 'val2017/'
heldout_classes = None
heldout_images = 500
load_from = None             # e.g. the released Sliding FC-CLIP ViTamin-L, converted
# ========================================================================================

_base_ = './fcclip_vitamin_l_panoptic.py'

crop = (1344, 1344)
# Mask2Former's large-scale jitter (as the panoptic recipe) on instance masks
train_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.RandomResize', scale=crop, ratio_range=(0.1, 2.0),
         resize_type='vitamin_dense.PILResize', keep_ratio=True),
    dict(type='mmdet.RandomCrop', crop_size=crop, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='mmdet.FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True,
         keep_empty=False),
    dict(type='mmdet.Pad', size=crop, pad_val=dict(img=(128, 128, 128))),
    dict(type='mmdet.PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='mmdet.ResizeShortestEdge', scale=crop[0], max_size=crop[0],
         resize_type='vitamin_dense.PILResize'),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='CocoFormatDataset', data_root=data_root,
                 ann_file=train_ann_file, data_prefix=dict(img=train_img_dir),
                 exclude_classes=train_exclude_classes, synonyms=synonyms,
                 filter_cfg=dict(filter_empty_gt=True), pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='CocoFormatDataset', data_root=data_root,
                 ann_file=val_ann_file, data_prefix=dict(img=val_img_dir),
                 exclude_classes=train_exclude_classes, synonyms=synonyms, test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
# mask AP (pycocotools), categories matched to labels by name
val_evaluator = dict(_delete_=True, type='OpenVocabCocoMetric', metric='segm',
                     ann_file=data_root + val_ann_file)
test_evaluator = val_evaluator
model = dict(test_cfg=dict(semantic_on=False, panoptic_on=False, instance_on=True))

heldout = [] if heldout_ann_file is None else [dict(
    prefix='heldout',
    dataset=dict(type='CocoFormatDataset', data_root=heldout_root, ann_file=heldout_ann_file,
                 data_prefix=dict(img=heldout_img_dir), indices=heldout_images,
                 metainfo=None if heldout_classes is None else dict(classes=heldout_classes)),
    evaluator=dict(type='OpenVocabCocoMetric', metric='segm',
                   ann_file=heldout_root + heldout_ann_file))]
own_metric = 'coco/segm_mAP'
best_by = own_metric if not heldout else 'hmean'
val_cfg = dict(type='MultiDatasetValLoop', extra_datasets=heldout,
               hmean_keys=[own_metric, 'heldout/' + own_metric] if heldout else [])
test_cfg = dict(type='MultiDatasetTestLoop', extra_datasets=heldout,
                hmean_keys=val_cfg['hmean_keys'])
default_hooks = dict(checkpoint=dict(save_best=best_by))
