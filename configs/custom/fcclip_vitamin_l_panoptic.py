# Fine-tune Sliding FC-CLIP (frozen ViTamin-L-336) on your own COCO-format panoptic data.
#
# Copy this file, edit the block below (paths only; the classes are the "categories" of
# your panoptic json, things and stuff by their "isthing"), then
#
#   python tools/train.py configs/custom/fcclip_vitamin_l_panoptic.py
#   python tools/test.py configs/custom/fcclip_vitamin_l_panoptic.py \
#       work_dirs/fcclip_vitamin_l_panoptic/best_hmean_iter_N.pth
#
# FC-CLIP keeps the CLIP towers frozen and ensembles its trained classifier with the frozen
# CLIP's mask-pooled scores (alpha 0.45 on classes it was trained on, beta 0.7 on the
# others), so the open vocabulary lives on; fine-tuning moves the mask proposals and the
# trained classifier towards your classes. The held-out vocabulary (ADE20K-150 panoptic,
# FC-CLIP's zero-shot benchmark, by default) measures what that costs, and the best
# checkpoint is the best harmonic mean of your PQ and the held-out PQ.
# README "Fine-tune on your own data".
#
# ============================== edit here ==============================================
data_root = 'data/my_dataset/'                        # everything below is relative to it
train_ann_file = 'annotations/panoptic_train.json'    # COCO panoptic json (panopticapi's)
train_img_dir = 'images/train/'
train_seg_dir = 'annotations/panoptic_train/'         # its PNGs (RGB-encoded segment ids)
val_ann_file = 'annotations/panoptic_val.json'
val_img_dir = 'images/val/'
val_seg_dir = 'annotations/panoptic_val/'
synonyms = None              # {'mug': ['cup', 'coffee mug']} or a file "name, synonym, ..."
train_exclude_classes = ()   # categories never trained on (void in training)
# The held-out vocabulary (None: none): ADE20K-150 panoptic val, first 500 images, by
# default (configs/_base_/datasets/ade20k_panoptic.py says how to make its files). Your own
# validation images with the excluded classes instead: heldout_type = 'CocoFormatPanopticDataset',
# heldout_root, heldout_ann_file, heldout_img_dir, heldout_seg_dir = your val paths,
# heldout_classes = train_exclude_classes.
heldout_type = 'OpenVocabADE20KPanopticDataset'
heldout_root = 'data/ADEChallengeData2016/'
heldout_ann_file = 'ade20k_panoptic_val.json'
heldout_img_dir = 'images/validation/'
heldout_seg_dir = 'ade20k_panoptic_val/'
heldout_classes = None
heldout_images = 500
# Start from the released Sliding FC-CLIP ViTamin-L (converted: README "Reproduce the
# published numbers") rather than new heads; then lower the learning rate (below).
load_from = None
# ========================================================================================

# the published recipe: model (frozen ViTamin-L-336, 1344 px input, stride 112), pipelines,
# optimiser; only the data and the schedule change here
_base_ = '../ov_seg/vitamin_l_coco.py'

train_dataloader = dict(
    dataset=dict(_delete_=True, type='CocoFormatPanopticDataset', data_root=data_root,
                 ann_file=train_ann_file,
                 data_prefix=dict(img=train_img_dir, seg=train_seg_dir),
                 exclude_classes=train_exclude_classes, synonyms=synonyms,
                 filter_cfg=dict(filter_empty_gt=False), pipeline=_base_.coco_train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='CocoFormatPanopticDataset', data_root=data_root,
                 ann_file=val_ann_file, data_prefix=dict(img=val_img_dir, seg=val_seg_dir),
                 exclude_classes=train_exclude_classes, synonyms=synonyms, test_mode=True,
                 pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader
# PQ (panopticapi through mmdet) and mIoU (mmseg) from the panoptic annotations
val_evaluator = [
    dict(type='OpenVocabPanopticMetric'),
    dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU']),
]
test_evaluator = val_evaluator

# the held-out set takes the primary's pipeline and evaluators
heldout = [] if heldout_ann_file is None else [dict(
    prefix='heldout',
    dataset=dict(type=heldout_type, data_root=heldout_root, ann_file=heldout_ann_file,
                 data_prefix=dict(img=heldout_img_dir, seg=heldout_seg_dir),
                 indices=heldout_images,
                 metainfo=None if heldout_classes is None else dict(classes=heldout_classes)))]
own_metric = 'panoptic/PQ'
best_by = own_metric if not heldout else 'hmean'
val_cfg = dict(type='MultiDatasetValLoop', extra_datasets=heldout,
               hmean_keys=[own_metric, 'heldout/' + own_metric] if heldout else [])
test_cfg = dict(type='MultiDatasetTestLoop', extra_datasets=heldout,
                hmean_keys=val_cfg['hmean_keys'])

# The recipe's optimiser (AdamW lr 1e-4, weight decay 0.05, batch 16, AMP, gradient norm
# 0.01); the CLIP towers stay frozen (model.backbone.frozen) and only the pixel decoder and
# the transformer decoder train. From the released checkpoint use lr 1e-5
# (optim_wrapper.optimizer.lr) and ~1/4 of the iterations. Length: ~50 epochs of your
# images at batch 16 from new heads (Mask2Former's COCO schedule), validated ~10 times.
# Starting points, not tuned here (no GPU or real data on the machine this was written on).
max_iters = 20000
val_interval = 2000
param_scheduler = dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
                       milestones=[int(max_iters * 0.9)], gamma=0.1)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=val_interval,
                    max_keep_ckpts=2, save_last=True, save_best=best_by, rule='greater'))
