# OWL-style open-vocabulary detection on OV-COCO with ViTamin-L-336, trained as OWL-ViT trains
# (scenic configs/clip_l14.py): both towers fine-tuned (image tower and heads at lr 2e-5, text
# tower at 2e-6, Adam without weight decay, warm-up then cosine decay), OWL's matching and
# losses (see configs/_base_/models/owl_vitamin.py). Trains on the 48 base classes, reports
# AP50 on the 17 novel (ov_coco/bbox_AP50_novel), 48 base and all 65. Window 336 at stride
# 336 in training and at test, one 896 px square box frame, large-scale jitter (0.1-2.0);
# 8 GPUs x 2 images.
#
#   torchrun --nproc_per_node=8 tools/train.py configs/ov_det/owl_vitamin_l_ovcoco.py \
#       --launcher pytorch
#   python tools/test.py configs/ov_det/owl_vitamin_l_ovcoco.py work_dirs/.../iter_60000.pth
#
# Differences from OWL kept on purpose: sliding windows over an 896 canvas (OWL-L: one 840 px
# image), large-scale jitter instead of OWL's crops and mosaics, batch 16 (OWL: 256) for 60k
# steps, batch-level gradient clipping (OWL clips per example), no stochastic depth in the
# towers, the cell-centre box bias (see the base model config).
#
# Recipe, not a reproduced result: no COCO data or GPU was available to train it here.
_base_ = [
    '../_base_/models/owl_vitamin.py',
    '../_base_/datasets/ov_coco_detection.py',
    '../_base_/default_runtime.py',
]

model = dict(
    # pseudo-negatives (OWL-ViT): LVIS names, minus every name that could name one of the 65
    # OV-COCO classes (by WordNet synset, hyponym, hypernym or synonym: sofa and loveseat for
    # couch, kitten for cat, mug and teacup for cup, doughnut for donut ...), so novel objects
    # in base images are never trained as negatives and base boxes never get two targets
    negative_vocabulary='dataset:lvis',
    num_negatives=32,
    test_cfg=dict(score_thr=0.0, max_per_img=100, nms_iou=None),
)

train_dataloader = dict(batch_size=2, num_workers=4)

# OWL's optimiser: no weight decay, text tower at a tenth of the image tower's lr
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-5, betas=(0.9, 0.999), weight_decay=0.0),
    paramwise_cfg=dict(custom_keys={'text_encoder': dict(lr_mult=0.1)}),
    clip_grad=dict(max_norm=1.0, norm_type=2))
max_iters = 60000  # ~10 epochs of the ~107k base-class images at batch 16
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=1000, end=max_iters, eta_min=0.0),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3,
                    save_best='ov_coco/bbox_AP50_novel', rule='greater'),
    visualization=dict(type='mmdet.DetVisualizationHook', draw=False, score_thr=0.3),
)
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
