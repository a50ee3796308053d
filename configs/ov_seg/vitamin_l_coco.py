# Sliding FC-CLIP with a frozen ViTamin-L-336, trained on COCO panoptic, evaluated
# zero-shot on ADE20K-150 panoptic (PQ, mIoU). The ViTamin paper's recipe:
#
# * ViTamin-L-336 frozen (datacomp1b weights); windows of 336 px, train stride
#   336 (a 1344 crop is 16 windows), test stride 112;
# * FC-CLIP head: 250 queries, 9 decoder layers, width 256; geometric ensemble
#   alpha 0.45 (seen) / beta 0.7 (unseen);
# * COCO panoptic with large-scale jitter (scale 0.1-2.0) cropped to 1344 px;
# * AdamW lr 1e-4, weight decay 0.05, batch 16 (8 GPUs x 2), AMP,
#   368,750 iterations (lr x0.1 at 327,778 and 355,092), gradient norm clip 0.01.
#
#   torchrun --nproc_per_node=8 tools/train.py configs/ov_seg/vitamin_l_coco.py \
#       --launcher pytorch
#   python tools/test.py configs/ov_seg/vitamin_l_coco.py work_dirs/vitamin_l_coco/iter_368750.pth
#   (other zero-shot sets: configs/ov_seg/eval/vitamin_l_<dataset>.py)
_base_ = [
    '../_base_/models/fcclip_vitamin_l.py',
    '../_base_/datasets/ade20k_panoptic.py',
    '../_base_/schedules/fcclip_368k.py',
    '../_base_/default_runtime.py',
]

# ----------------------------------------------------------- training data
coco_root = 'data/coco/'
coco_crop = (1344, 1344)
coco_train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=None),
    dict(type='mmdet.LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True,
         backend_args=None),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.RandomResize', scale=coco_crop, ratio_range=(0.1, 2.0),
         resize_type='mmdet.Resize', keep_ratio=True),
    dict(type='mmdet.RandomCrop', crop_size=coco_crop, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='mmdet.FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='mmdet.PackDetInputs'),
]
train_dataloader = dict(
    batch_size=2,  # per GPU: 8 GPUs x 2 = 16
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='mmdet.AspectRatioBatchSampler'),
    dataset=dict(type='OpenVocabCocoPanopticDataset', data_root=coco_root,
                 ann_file='annotations/panoptic_train2017.json',
                 data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=32),
                 pipeline=coco_train_pipeline, backend_args=None))

# LSJ crops are padded to the full 1344 px (as Mask2Former's BatchFixedSizePad).
model = dict(data_preprocessor=dict(batch_pad_size=coco_crop))

# ------------------------------------------------------------- optimisation
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
# ADE20K validation (2,000 images, 100 windows each at test stride 112) is
# slow: every 36,875 iterations (10 times per run) instead of FC-CLIP's 5,000.
train_cfg = dict(val_interval=36875)
default_hooks = dict(checkpoint=dict(interval=5000, max_keep_ckpts=3, save_last=True))
