# Sliding F-ViT with a frozen ViTamin-L-336 (the ViTamin paper's open-vocabulary
# detector; published on MMDetection 2.x, here on MMDetection 3.x), as released
# (Beckschen/ViTamin vitamin_fvit/F-ViT):
#   frozen sliding-window ViTamin (window 336, stride 168 with the released
#   placement: windows at exact pixel offsets, outputs at floor(offset / stride))
#   -> trainable adapters: s4 conv-BN-GELU-conv, s8 conv, block 14 (of 31) as is,
#      max-pool of the last map -> FPN 256 -> RPN -> RoI head (4 conv + 2 shared
#      FC, then one FC + ReLU per branch; cosine of the class branch's output vs
#      text embeddings, learnable temperature 50, background text embedding,
#      class-agnostic boxes)
#   text: F-ViT's recipe (63 ViLD templates, "This is ..." prefix, a/an, category
#   name only, a "background" embedding)
#   test: images padded to a square (896 x 896); RoIAlign(1x1) on the dense CLIP
#   map (window tokens averaged, then fc_norm + projection), geometric ensemble.
# For new training, window_placement='aligned' snaps the stride to 160 px so that
# every window lands on the 16 px token grid.
# The model is built in mmdet's scope (_scope_), so stock mmdet names work inside
# it whatever the config's default scope.
norm_cfg = dict(type='SyncBN', requires_grad=True)  # BN on one device (reverted automatically)
clip_dim = 768  # ViTaminBackbone('ViTamin-L-336').clip_dim; checked against the text tower
model = dict(
    _scope_='mmdet',
    type='SlidingFViT',
    window_stride=168,
    window_placement='published',
    data_preprocessor=dict(
        type='FViTDataPreprocessor',
        pad_to_square=True,  # test images as published: Pad(pad_to_square=True) after Normalize
        # CLIP normalisation on a 0-255 scale, RGB (= ViTaminBackbone.pixel_mean / pixel_std)
        mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='ViTaminBackbone',
        model_name='ViTamin-L-336',
        weights='datacomp1b',
        frozen=True,
        out_levels=('s4', 's8', 's16'),
        out_block_indices=(14, ),   # the middle of 31 ViT blocks -> the stride-16 level
        with_clip_map=True,         # dense CLIP map for the test-time ensemble
        memory_budget_mb=4096),
    # Default levels: s4 conv-norm-GELU-conv, s8 conv, block14 identity, s16 max-pool.
    adapter=dict(norm='SyncBN'),
    text_encoder=dict(type='FViTTextEncoder'),  # the backbone's model and weights
    # in_channels come from the backbone: [160, 320, 1024, 1024] for ViTamin-L
    neck=dict(type='FPN', out_channels=256, num_outs=5, norm_cfg=norm_cfg),
    rpn_head=dict(
        type='RPNHead',
        in_channels=256,
        feat_channels=256,
        num_convs=2,
        anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                              strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    roi_head=dict(
        type='FViTRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type='FViTBBoxHead',
            embed_dim=clip_dim,
            in_channels=256,
            roi_feat_size=7,
            num_shared_convs=4,
            num_shared_fcs=2,
            num_cls_fcs=1,   # its ReLU output is the RoI embedding (fc_out_channels = clip_dim)
            num_reg_fcs=1,
            conv_out_channels=256,
            fc_out_channels=clip_dim,
            norm_cfg=norm_cfg,
            reg_class_agnostic=True,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                            target_stds=[0.1, 0.1, 0.2, 0.2]),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0),
            temperature=50.0,
            background_weight=0.6,
            clip_temperature=75.0,
            alpha=0.1,
            beta=0.8),
        clip_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=1, sampling_ratio=0),
            out_channels=clip_dim,
            featmap_strides=[16])),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3,
                          min_pos_iou=0.3, match_low_quality=True, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=256, pos_fraction=0.5, neg_pos_ub=-1,
                         add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(nms_pre=2000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7),
                          min_bbox_size=0),
        rcnn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                          min_pos_iou=0.5, match_low_quality=False, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1,
                         add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=2000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7),
                 min_bbox_size=0),
        rcnn=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.4), max_per_img=100)))
