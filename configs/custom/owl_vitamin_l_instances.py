# Fine-tune the OWL-style detector (ViTamin-L-336) on your own COCO-format boxes.
#
# Copy this file, edit the block below (paths only; the classes are the "categories" of
# your annotation files), then
#
#   python tools/train.py configs/custom/owl_vitamin_l_instances.py
#   python tools/test.py configs/custom/owl_vitamin_l_instances.py \
#       work_dirs/owl_vitamin_l_instances/best_hmean_iter_N.pth
#
# Every validation scores your classes (coco/bbox_mAP) AND a held-out vocabulary
# (heldout/coco/bbox_mAP: COCO's 80 classes on 500 COCO images by default), and keeps the
# checkpoint with the best harmonic mean of the two (best_hmean_iter_N.pth): fine-tuning on
# a few classes erodes the others, and the last checkpoint is rarely the best trade-off
# (MMDetection's GLIP notes make the same point). README "Fine-tune on your own data".
#
# ============================== edit here ==============================================
data_root = 'data/my_dataset/'                       # everything below is relative to it
train_ann_file = 'annotations/instances_train.json'  # COCO instances: images, annotations,
train_img_dir = 'images/train/'                      #   categories (= your class names)
val_ann_file = 'annotations/instances_val.json'
val_img_dir = 'images/val/'
# More names per class, all prompted (optional): {'mug': ['cup', 'coffee mug']}, or a text
# file with one class a line, "name, synonym, ...". A "synonyms" list inside a category of
# the json (LVIS' field) is used too.
synonyms = None
# Categories of your files never trained on (their boxes are dropped from training and
# from your validation score); score them as the held-out vocabulary below.
train_exclude_classes = ()
# The held-out vocabulary evaluated at every validation (None: none, and the best checkpoint
# is chosen by your own mAP alone). Default: COCO val2017's 80 classes on its first 500
# images. Your own validation images with the excluded classes instead:
#   heldout_root, heldout_ann_file, heldout_img_dir = data_root, val_ann_file, val_img_dir
#   heldout_classes = train_exclude_classes
heldout_root = 'data/coco/'
heldout_ann_file = 'annotations/instances_val2017.json'
heldout_img_dir = 'val2017/'
heldout_classes = None    # None: every category of heldout_ann_file
heldout_images = 500      # the first N images (None: all)
# Start from a detector checkpoint of ours (e.g. the OV-LVIS recipe's) rather than from
# CLIP with new heads: it keeps far more of the open vocabulary.
load_from = None
# ========================================================================================

# OWL's detector, the OV-COCO recipe's pipelines (large-scale jitter on the 896 px canvas)
# and runtime; only the data, what is frozen and the schedule change here
_base_ = [
    '../_base_/models/owl_vitamin.py',
    '../_base_/datasets/ov_coco_detection.py',
    '../_base_/default_runtime.py',
]

# -------------------------------------------------------------------- what is trained
# The text tower stays frozen (its class embeddings are computed once and cached): it is
# what names classes you never trained on, and a few class names are no data to move it.
# The image tower and the heads train (OWL's recipe); from an OWL checkpoint (load_from),
# give the image tower a tenth of the rate (paramwise_cfg below), or freeze it
# (backbone=dict(frozen=True)) for a few hundred images.
model = dict(freeze_text=True)

# ---------------------------------------------------------------------------- data
train_dataloader = dict(
    batch_size=2,  # per GPU; the schedule below assumes 16 in all (8 GPUs x 2)
    dataset=dict(_delete_=True, type='CocoFormatDataset', data_root=data_root,
                 ann_file=train_ann_file, data_prefix=dict(img=train_img_dir),
                 exclude_classes=train_exclude_classes, synonyms=synonyms,
                 filter_cfg=dict(filter_empty_gt=True, min_size=8),
                 pipeline=_base_.train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='CocoFormatDataset', data_root=data_root,
                 ann_file=val_ann_file, data_prefix=dict(img=val_img_dir),
                 exclude_classes=train_exclude_classes, synonyms=synonyms, test_mode=True,
                 pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader
# COCO box AP, categories matched to labels by name
val_evaluator = dict(_delete_=True, type='OpenVocabCocoMetric', metric='bbox',
                     ann_file=data_root + val_ann_file)
test_evaluator = val_evaluator

# The held-out vocabulary: its own data set and evaluator, the primary's pipeline and loader.
heldout = [] if heldout_ann_file is None else [dict(
    prefix='heldout',
    dataset=dict(type='CocoFormatDataset', data_root=heldout_root, ann_file=heldout_ann_file,
                 data_prefix=dict(img=heldout_img_dir), indices=heldout_images,
                 metainfo=None if heldout_classes is None else dict(classes=heldout_classes)),
    evaluator=dict(type='OpenVocabCocoMetric', metric='bbox',
                   ann_file=heldout_root + heldout_ann_file))]
own_metric = 'coco/bbox_mAP'
best_by = own_metric if not heldout else 'hmean'  # hmean: of yours and the held-out mAP
val_cfg = dict(type='MultiDatasetValLoop', extra_datasets=heldout,
               hmean_keys=[own_metric, 'heldout/' + own_metric] if heldout else [])
test_cfg = dict(type='MultiDatasetTestLoop', extra_datasets=heldout,
                hmean_keys=val_cfg['hmean_keys'])

# ---------------------------------------------------------------------- schedule
# OWL's optimiser (Adam, no weight decay, lr 2e-5 at batch 16, warm-up then cosine decay,
# gradient norm 1). Length: about 20 epochs of your training images (1,000 images at
# batch 16: ~1,250 iterations); validate ~10 times, keep the best. Starting points, not
# tuned here (no GPU or real data on the machine this was written on).
max_iters = 5000
val_interval = 500
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-5, betas=(0.9, 0.999), weight_decay=0.0),
    # from an OWL checkpoint: custom_keys={'backbone': dict(lr_mult=0.1)}
    paramwise_cfg=dict(custom_keys={}),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=max_iters // 10),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=max_iters // 10, end=max_iters,
         eta_min=0.0),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=val_interval,
                    max_keep_ckpts=2, save_best=best_by, rule='greater'),
    visualization=dict(type='mmdet.DetVisualizationHook', draw=False, score_thr=0.3),
)
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
