# Fine-tune Sliding F-ViT (ViTamin-L-336) on your own COCO-format boxes.
#
# Copy this file, edit the block below (paths only; the classes are the "categories" of
# your annotation files), then
#
#   python tools/train.py configs/custom/fvit_vitamin_l_instances.py
#   python tools/test.py configs/custom/fvit_vitamin_l_instances.py \
#       work_dirs/fvit_vitamin_l_instances/best_hmean_epoch_N.pth
#
# F-ViT keeps the whole CLIP image tower frozen and, at test, mixes its detector scores
# with CLIP's own (geometric ensemble: weight 0.8 on CLIP for classes not trained on),
# so classes outside your data are still scored by an untouched CLIP; what fine-tuning
# can erode is the class-agnostic proposals (RPN) and the box head. The held-out
# vocabulary below measures exactly that. README "Fine-tune on your own data".
#
# ============================== edit here ==============================================
data_root = 'data/my_dataset/'                       # everything below is relative to it
train_ann_file = 'annotations/instances_train.json'  # COCO instances: images, annotations,
train_img_dir = 'images/train/'                      #   categories (= your class names)
val_ann_file = 'annotations/instances_val.json'
val_img_dir = 'images/val/'
synonyms = None              # {'mug': ['cup', 'coffee mug']} or a file "name, synonym, ..."
train_exclude_classes = ()   # categories never trained on (scored as held-out below)
# The held-out vocabulary (None: none). Default: COCO val2017's 80 classes, first 500 images;
# your own images with the excluded classes instead: heldout_root, heldout_ann_file,
# heldout_img_dir = data_root, val_ann_file, val_img_dir; heldout_classes = train_exclude_classes
heldout_root = 'data/coco/'
heldout_ann_file = 'annotations/instances_val2017.json'
heldout_img_dir = 'val2017/'
heldout_classes = None
heldout_images = 500
load_from = None             # a Sliding F-ViT checkpoint (e.g. the OV-COCO recipe's)
# ========================================================================================

_base_ = '../ov_det/fvit_vitamin_l_ovcoco.py'   # model, pipelines, optimiser of the recipe

train_dataloader = dict(
    batch_size=8,  # per GPU: 8 GPUs x 8 = 64, the recipe's (tools/train.py --auto-scale-lr)
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
val_evaluator = dict(_delete_=True, type='OpenVocabCocoMetric', metric='bbox',
                     ann_file=data_root + val_ann_file)
test_evaluator = val_evaluator

heldout = [] if heldout_ann_file is None else [dict(
    prefix='heldout',
    dataset=dict(type='CocoFormatDataset', data_root=heldout_root, ann_file=heldout_ann_file,
                 data_prefix=dict(img=heldout_img_dir), indices=heldout_images,
                 metainfo=None if heldout_classes is None else dict(classes=heldout_classes)),
    evaluator=dict(type='OpenVocabCocoMetric', metric='bbox',
                   ann_file=heldout_root + heldout_ann_file))]
own_metric = 'coco/bbox_mAP'
best_by = own_metric if not heldout else 'hmean'
val_cfg = dict(type='MultiDatasetValLoop', extra_datasets=heldout,
               hmean_keys=[own_metric, 'heldout/' + own_metric] if heldout else [])
test_cfg = dict(type='MultiDatasetTestLoop', extra_datasets=heldout,
                hmean_keys=val_cfg['hmean_keys'])

# The recipe's optimiser (AdamW lr 1e-4, weight decay 0.1, batch 64, fp16, warm-up); only
# the adapters, FPN, RPN and RoI head train. Length: ~24 epochs of a few thousand images,
# validated every 2, best kept (the recipe's 3 epochs are for COCO's 107k images).
# Starting points, not tuned here (no GPU or real data on the machine this was written on).
max_epochs = 24
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=2)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=2, max_keep_ckpts=2,
                    save_best=best_by, rule='greater'))
