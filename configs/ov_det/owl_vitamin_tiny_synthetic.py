# Tiny OWL detector on the synthetic shapes (offline, CPU, minutes): the whole path of the
# OV-COCO / OV-LVIS recipes (sliding windows, stitched-map heads, one square box frame,
# Hungarian matching with OWL's costs and losses, pseudo-negatives, COCO AP) at toy scale.
# The cheap mode: the text tower stays frozen (its class embeddings are cached), and the
# random-init tower trains from scratch at a toy learning rate, not OWL's 2e-5.
#
#   OMP_NUM_THREADS=1 python tools/train.py configs/ov_det/owl_vitamin_tiny_synthetic.py
#   python tools/test.py configs/ov_det/owl_vitamin_tiny_synthetic.py \
#       work_dirs/owl_vitamin_tiny_synthetic/iter_6000.pth --show-dir vis
#   python demo/detect.py data/synthetic_owl/images/val/000042.jpg --vocab dataset:synthetic \
#       --checkpoint work_dirs/owl_vitamin_tiny_synthetic/iter_6000.pth
#
# ViTamin-Tiny (64 px window, random init: no weights exist for it) is fine-tuned end to end;
# 128 px images are 2 x 2 windows, so many shapes cross a window border. Its text tower is
# random too, so only the training prompts mean anything: query the trained model with the
# data set's own classes and synonyms (dataset:synthetic), not with new names.
# Reference run (6000 iterations, ~6.5 min on one core), measured with the DETR-style losses
# before the OWL recipe (issue 10): held-out AP 0.351 / AP50 0.524 (untrained: 0.000). With
# OWL's losses, init and box frame, the 400-iteration run of tests/test_det_learning.py
# reaches AP 0.116 / AP50 0.297 (6000 iterations not re-measured).
_base_ = [
    '../_base_/models/owl_vitamin.py',
    '../_base_/datasets/synthetic_detection.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(model_name='ViTamin-Tiny', weights=None, frozen=False, train_stride=64,
                  test_stride=64, memory_budget_mb=512, grad_checkpointing=False),
    freeze_text=True,
    frame_size=128,                    # the training crop: the square box frame
    # a random text tower embeds bare names far more distinctly than 'a photo of a {}.'
    text_encoder=dict(model_name='ViTamin-Tiny', weights=None, templates=['{}'],
                      progress=False),
    # pseudo-negatives: shape names that never occur in the data (any drawn class, and the
    # evaluation classes, are removed from this pool automatically)
    negative_vocabulary='hexagon,diamond,oval,arrow,heart,crescent,pentagon,octagon',
    num_negatives=2,
    test_cfg=dict(score_thr=0.0, max_per_img=50, nms_iou=0.5),
)

# Training crops are always full 128 px (zoom in 1.0-1.6x, then crop): a randomly initialised
# ViTamin has zero conv biases, so batch padding (exact zeros after normalisation) reaches its
# LayerNorms as all-zero vectors, whose gradient is ~1/sqrt(eps) per norm: 1e10-1e14 in the
# stem, and gradient clipping then shrinks the whole step to nothing. Pretrained weights (the
# real recipes) have no such degenerate input.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.RandomResize', scale=(128, 128), ratio_range=(1.0, 1.6),
         resize_type='mmdet.Resize', keep_ratio=True),
    dict(type='mmdet.RandomCrop', crop_size=(128, 128), crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='mmdet.FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='mmdet.PackDetInputs'),
]
synthetic_train_generator = dict(num_images=200, image_size=128, seed=0)
synthetic_val_generator = dict(num_images=50, image_size=128, seed=1)
# Its own synthetic splits (the other tiny configs generate theirs elsewhere);
# --cfg-options data_root=DIR moves them (dataloaders and evaluators together).
data_root = 'data/synthetic_owl/'
train_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root,
                                                    generator=synthetic_train_generator,
                                                    pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, generator=synthetic_val_generator))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2))
max_iters = 6000  # ~5 minutes on one free CPU core (OMP_NUM_THREADS=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, milestones=[4500, 5500], gamma=0.1),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1500, max_keep_ckpts=1),
)
# mmdet's visualizer, for mmdet's DetInferencer (the hook is default_runtime's)
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
randomness = dict(seed=0)
