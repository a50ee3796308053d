# OWL-ViT / OWLv2-style open-vocabulary detector on ViTamin-L-336 (frozen, sliding windows).
#
# Heads run on the stitched stride-16 token map of the whole image (one box per token, no
# per-window merging); the CLS-token stand-in is fc_norm(mean of the image's tokens).
# Vocabularies come from the data sets (VocabularyHook): training queries are the
# training classes (base classes for open-vocabulary splits) plus pseudo-negative names.
vitamin_model = 'ViTamin-L-336'
vitamin_weights = 'datacomp1b'
window = 336

# CLIP's normalisation on a 0-255 scale (RGB).
clip_mean = [122.7709383, 116.7460125, 104.09373615]
clip_std = [68.5005327, 66.6321579, 70.32316305]

model = dict(
    type='OwlDetector',
    backbone=dict(
        type='ViTaminBackbone',
        model_name=vitamin_model,
        weights=vitamin_weights,
        frozen=True,
        train_stride=window,           # no overlap in training (as FC-CLIP / Sliding F-ViT)
        test_stride=224,               # 2/3 of the window at test time (multiple of 16)
        memory_budget_mb=4096,
    ),
    text_encoder=dict(type='TextClassifier', model_name=vitamin_model, weights=vitamin_weights,
                      templates='vild'),
    head=dict(
        type='OwlDetectionHead',
        box_anchor='center',           # 'corner' reproduces OWL-ViT's bias (ported weights)
        context='image',               # CLS stand-in: 'image' | 'window' | 'none'
        with_objectness=True,
        box_position_input=True,       # tokens of a stitched map lack global position
    ),
    vocabulary=None,                   # from the training data set (VocabularyHook)
    test_vocabulary=None,              # from the evaluation data set
    negative_vocabulary=None,          # e.g. 'dataset:lvis' (minus the evaluation classes)
    num_negatives=0,
    train_cfg=dict(
        assigner=dict(
            type='mmdet.HungarianAssigner',
            match_costs=[
                dict(type='mmdet.FocalLossCost', weight=2.0),
                dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0),
            ])),
    loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                  loss_weight=2.0),
    loss_bbox=dict(type='mmdet.L1Loss', loss_weight=5.0),
    loss_iou=dict(type='mmdet.GIoULoss', loss_weight=2.0),
    loss_obj=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                  loss_weight=1.0),
    test_cfg=dict(score_thr=0.0, max_per_img=100, nms_pre=1000, nms_iou=0.5,
                  score_mode='class'),
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor',
        mean=clip_mean,
        std=clip_std,
        bgr_to_rgb=True,
        pad_size_divisor=16,
    ),
)

custom_hooks = [dict(type='VocabularyHook')]
