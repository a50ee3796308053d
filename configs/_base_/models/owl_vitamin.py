# OWL-ViT / OWLv2-style open-vocabulary detector on ViTamin-L-336 (sliding windows), trained
# as OWL-ViT trains (scenic configs/clip_l14.py): both towers fine-tuned, Hungarian matching
# with class / L1 / GIoU weighted 1 / 1 / 1, focal alpha 0.3 gamma 2, L1 on box corners,
# per-example normalisation, prior probability 0.01, scenic's head initialisation; top-k
# detections without NMS at test.
#
# Heads run on the stitched stride-16 token map of the whole image (one box per token, no
# per-window merging); the CLS-token stand-in is fc_norm(mean of the image's tokens). Boxes
# live in one square frame of frame_size px (OWL pads every image to a square): the training
# canvas and the test canvas are the same, so the learned box offsets decode to the same
# pixels and the sliding windows average the same tokens in training and at test.
# Vocabularies come from the data sets (VocabularyHook): training queries are the training
# classes (base classes for open-vocabulary splits) plus pseudo-negative names that never
# name a vocabulary object (compared by WordNet meaning, not by words).
vitamin_model = 'ViTamin-L-336'
vitamin_weights = 'datacomp1b'
window = 336
owl_frame_size = 896  # the square box frame (px): the training canvas

# CLIP's normalisation on a 0-255 scale (RGB).
clip_mean = [122.7709383, 116.7460125, 104.09373615]
clip_std = [68.5005327, 66.6321579, 70.32316305]

model = dict(
    type='OwlDetector',
    backbone=dict(
        type='ViTaminBackbone',
        model_name=vitamin_model,
        weights=vitamin_weights,
        frozen=False,                  # OWL fine-tunes the whole image tower ...
        freeze_clip_head=False,        # ... its final norm (fc_norm) included
        grad_checkpointing=True,
        # one stride in training and at test (= the window: no overlap but the clamped last
        # window, identical on the 896 canvas of both), so the heads are evaluated on tokens
        # averaged over exactly the windows they were trained on
        train_stride=window,
        test_stride=window,
        memory_budget_mb=4096,
    ),
    text_encoder=dict(type='TextClassifier', model_name=vitamin_model, weights=vitamin_weights,
                      templates='vild'),
    freeze_text=False,                 # OWL fine-tunes the text tower too (lr 2e-6)
    frame_size=owl_frame_size,
    head=dict(
        type='OwlDetectionHead',
        # Deliberate difference: OWL's bias puts a token's box at its cell's bottom-right
        # corner ('corner', kept for ported OWL weights); its last row and column start at
        # logit(1 + 1e-4) ~ 9.2, where the sigmoid's gradient is ~1e-4. Heads trained from
        # scratch use the exact cell centre.
        box_anchor='center',
        context='image',               # CLS stand-in: 'image' | 'window' | 'none'
        with_objectness=True,
        box_position_input=True,       # tokens of a stitched map lack global position
        prior_prob=0.01,
        init='owl',                    # scenic's initialisation
    ),
    vocabulary=None,                   # from the training data set (VocabularyHook)
    test_vocabulary=None,              # from the evaluation data set
    negative_vocabulary=None,          # e.g. 'dataset:lvis' (minus the vocabulary, by meaning)
    negative_meaning='wordnet',
    num_negatives=0,
    federated_negatives=50,            # with federated_loss: OWL's total_num_negatives
    train_cfg=dict(
        assigner=dict(
            type='mmdet.HungarianAssigner',
            match_costs=[
                dict(type='mmdet.FocalLossCost', weight=1.0, alpha=0.3, gamma=2.0),
                dict(type='mmdet.BBoxL1Cost', weight=1.0, box_format='xywh'),
                dict(type='mmdet.IoUCost', iou_mode='giou', weight=1.0),
            ]),
        normalization='per_example',
        l1_format='xyxy'),
    loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.3,
                  loss_weight=1.0),
    loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0),
    loss_iou=dict(type='mmdet.GIoULoss', loss_weight=1.0),
    loss_obj=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.3,
                  loss_weight=1.0),
    # OWL keeps the top-k (token, class) pairs with no NMS (nms_iou=0.5 turns NMS on)
    test_cfg=dict(score_thr=0.0, max_per_img=100, nms_pre=1000, nms_iou=None,
                  score_mode='class'),
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor',
        mean=clip_mean,
        std=clip_std,
        bgr_to_rgb=True,
        pad_size_divisor=16,           # the model pads each batch to its square frame itself
    ),
)

custom_hooks = [dict(type='VocabularyHook')]
