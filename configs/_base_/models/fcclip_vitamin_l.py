# FC-CLIP on a frozen ViTamin-L-336 (vitamin_dense.models.FCCLIPSegmentor).
#
# Defaults are the ViTamin paper's Sliding FC-CLIP (Beckschen/ViTamin
# vitamin_fcclip, itself bytedance/fc-clip with a sliding-window backbone):
# windows of 336 px, stride 112 at test time; s32 = s16[..., ::2, ::2] (the
# port's res5); learned global position maps for its 1344 x 1344 input added
# to s4..s32 before the pixel decoder; FC-CLIP's head (MSDeformAttn pixel
# decoder with 6 layers, all in fp32 under AMP, 9 masked-attention decoder
# layers, 250 queries, width 256); a class scores the largest logit over its
# synonyms (both classifiers, training too); Mask2Former's losses; the
# geometric ensemble with alpha 0.45 (seen classes) and beta 0.7 (unseen) on
# every mask (ENSEMBLE_ON_VALID_MASK False).

model = dict(
    type='FCCLIPSegmentor',
    data_preprocessor=dict(type='OVSegDataPreprocessor', pad_size_divisor=32, bgr_to_rgb=True),
    backbone=dict(
        type='ViTaminBackbone',
        model_name='ViTamin-L-336',
        weights='datacomp1b',
        train_stride=336,
        test_stride=112,
        frozen=True,                 # fine-tune: frozen=False (+ trainable_blocks=N)
        out_levels=('s4', 's8', 's16', 's32'),
        s32_mode='subsample',        # the port's res5 = res4[..., ::2, ::2]
        with_clip_map=False,         # the ensemble pools s16 tokens (pool, then fc_norm + proj)
        memory_budget_mb=4096,
        progress=False),
    text_encoder=dict(type='TextClassifier', templates='vild', chunk_size=256),
    synonym_reduce='max',
    # 1344 = the published input: every image resized to a longer side of 1344 and
    # padded to 1344 x 1344 (36M parameters for ViTamin-L)
    global_pos_embed=dict(size=1344),
    head=dict(
        type='FCCLIPHead',
        hidden_dim=256,
        num_queries=250,
        num_decoder_layers=9,
        num_heads=8,
        pixel_decoder=dict(num_layers=6, ffn_channels=1024, num_points=4, num_groups=32,
                           impl='auto', fp32_encoder=True, fp32_fpn=True),
        transformer_decoder=dict(ffn_channels=2048)),
    criterion=dict(
        type='MaskFormerCriterion',
        num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75,
        class_weight=2.0, mask_weight=5.0, dice_weight=5.0, void_weight=0.1,
        deep_supervision=True),
    ensemble=dict(alpha=0.45, beta=0.7, use_in_vocab=True, use_out_vocab=True,
                  ensemble_on_valid_mask=False),
    test_cfg=dict(semantic_on=True, panoptic_on=True, instance_on=True,
                  object_mask_thr=0.0, overlap_thr=0.8, max_per_image=100, stride=None))

# Training and test vocabularies come from the data sets' metainfo.
custom_hooks = [dict(type='VocabularyHook')]
