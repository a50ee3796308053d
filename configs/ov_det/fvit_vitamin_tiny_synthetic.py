# Sliding F-ViT on the synthetic shapes, with the tiny random-init ViTamin: the
# whole F-ViT path (frozen sliding-window trunk, adapters, FPN, RPN, cosine
# text classifier, CLIP ensemble) in a few minutes on a CPU, no downloads.
# 'star' is held out of training (open-vocabulary split); it is scored at test
# time as a novel class. With random text and image towers there is no
# zero-shot transfer, so only base-class AP can rise: this config checks that
# the detector learns, not CLIP's knowledge.
#
#   python tools/train.py configs/ov_det/fvit_vitamin_tiny_synthetic.py
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/synthetic_detection.py',
    '../_base_/models/sliding_fvit_vitamin_l.py',
]
# Shapes a little larger and fewer than the data set's defaults, no clutter: a frozen
# random trunk has to do with what its random filters give, and this keeps the run short.
_shapes = dict(image_size=128, min_size=0.25, max_size=0.5, max_instances=3, void_prob=0.0)
synthetic_train_generator = dict(num_images=200, seed=0, holdout=('star', ), **_shapes)
synthetic_val_generator = dict(num_images=50, seed=1, **_shapes)
# Its own synthetic splits (the other tiny configs generate theirs elsewhere);
# --cfg-options data_root=DIR moves them (dataloaders and evaluators together).
data_root = 'data/synthetic_fvit/'
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root,
                                                    generator=synthetic_train_generator))
val_dataloader = dict(dataset=dict(data_root=data_root, generator=synthetic_val_generator))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='OVCocoMetric',
                     ann_file=data_root + 'annotations/instances_val.json', metric='bbox',
                     novel_classes=('star', ))
test_evaluator = val_evaluator

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    window_stride=32,  # half the 64 px window, as F-ViT's 168 of 336
    window_placement='aligned',  # new training: windows on the token grid
    backbone=dict(model_name='ViTamin-Tiny', weights=None, out_block_indices=(0, ),
                  memory_budget_mb=512),
    adapter=dict(norm='BN'),
    # random text towers separate bare names best
    text_encoder=dict(_delete_=True, type='TextClassifier', templates=['{}']),
    neck=dict(out_channels=64, norm_cfg=norm_cfg),
    rpn_head=dict(in_channels=64, feat_channels=64,
                  anchor_generator=dict(scales=[4], strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(embed_dim=64, in_channels=64, conv_out_channels=64, fc_out_channels=64,
                       norm_cfg=norm_cfg, clip_temperature=50.0),
        clip_roi_extractor=dict(out_channels=64)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100),
                  rcnn=dict(score_thr=0.01, nms=dict(iou_threshold=0.5), max_per_img=100)))

custom_hooks = [dict(type='VocabularyHook')]

max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.8)], gamma=0.1),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
# mmdet's visualizer, for mmdet's DetInferencer (the hook is default_runtime's)
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=False)
