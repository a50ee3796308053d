# Tiny FC-CLIP on synthetic shapes: CPU-friendly, offline, for the quickstart and tests.
#
# ViTamin-Tiny (64 px windows, 2 ViT blocks, random init: no weights are
# downloaded), a narrow head, 128 px synthetic images (generated into
# data/synthetic_fcclip/ on first use). 2,000 iterations take about 3 minutes on one
# CPU thread (~11 it/s; the tensors are small: OMP_NUM_THREADS=1 is faster
# than 2) and reach PQ 49.6 (stuff 94.3, things 12.5: shapes need longer) and
# mIoU 51.0 on the 50 held-out validation images; tests/test_seg_learning.py
# checks a shorter run against the untrained model and a majority class.
#
#   OMP_NUM_THREADS=1 python tools/train.py configs/ov_seg/vitamin_tiny_synthetic.py
#   python tools/test.py configs/ov_seg/vitamin_tiny_synthetic.py \
#       work_dirs/vitamin_tiny_synthetic/iter_2000.pth
_base_ = [
    '../_base_/models/fcclip_vitamin_l.py',
    '../_base_/datasets/synthetic_panoptic.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(model_name='ViTamin-Tiny', weights=None, train_stride=64, test_stride=32,
                  memory_budget_mb=512),
    text_encoder=dict(disk_cache=False),
    # cheaper than the published model: no learned global position maps (those are
    # sized for the 1344 px input; here LSJ crops vary in size)
    global_pos_embed=None,
    head=dict(hidden_dim=64, num_queries=16, num_decoder_layers=3, num_heads=4,
              pixel_decoder=dict(num_layers=2, ffn_channels=128, num_groups=8),
              transformer_decoder=dict(ffn_channels=256)),
    criterion=dict(num_points=1024),
    # A randomly initialised CLIP knows nothing to ensemble with: the trained
    # in-vocabulary classifier decides (set use_out_vocab=True with real weights).
    ensemble=dict(use_out_vocab=False),
    # Random text embeddings are nearly parallel (cosine ~0.97): centre them.
    center_text_embeddings=True,
    test_cfg=dict(object_mask_thr=0.0, max_per_image=20))

# Its own synthetic splits (the tiny OWL and F-ViT configs generate other ones elsewhere);
# --cfg-options data_root=DIR moves them (dataloaders and evaluators together).
data_root = 'data/synthetic_fcclip/'
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

max_iters = 2000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=1.0, norm_type=2),
    constructor='ViTaminLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.9, custom_keys={
        'query_feat': dict(decay_mult=0.0), 'query_embed': dict(decay_mult=0.0),
        'level_embed': dict(decay_mult=0.0), 'void_embedding': dict(decay_mult=0.0)}))
param_scheduler = dict(type='PolyLR', power=0.9, eta_min=1e-5, by_epoch=False, begin=0,
                       end=max_iters)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=2,
                    save_last=True))
log_processor = dict(window_size=50)
randomness = dict(seed=0)
