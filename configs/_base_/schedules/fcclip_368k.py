# Mask2Former / FC-CLIP COCO schedule: 368,750 iterations at batch 16, AdamW
# (lr 1e-4, weight decay 0.05), lr x0.1 at 327,778 and 355,092, gradient
# norm clipped at 0.01, no weight decay on norms, biases and query / level
# embeddings. With a fine-tuned backbone, layer-wise lr decay applies
# (paramwise_cfg.decay_rate; heads get the base lr).
max_iters = 368750
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    constructor='ViTaminLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(
        decay_rate=0.9,
        custom_keys={
            'query_feat': dict(decay_mult=0.0),
            'query_embed': dict(decay_mult=0.0),
            'level_embed': dict(decay_mult=0.0),
            'void_embedding': dict(decay_mult=0.0),
        }))
param_scheduler = dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
                       milestones=[327778, 355092], gamma=0.1)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)
