# Mask2Former / FC-CLIP COCO schedule: 368,750 iterations at batch 16, AdamW
# (lr 1e-4, weight decay 0.05), lr x0.1 at 327,778 and 355,092, gradient
# norm clipped at 0.01 (whole model).
#
# Weight decay as FC-CLIP's train_net.py build_optimizer: 0.05 on every
# parameter except those of normalisation layers (WEIGHT_DECAY_NORM = 0.0) and
# of nn.Embedding modules (WEIGHT_DECAY_EMBED = 0.0: the decoder's query_feat,
# query_embed and level_embed, the void embedding). Biases, the head's
# logit_scale, the pixel decoder's level_embed (a plain parameter in FC-CLIP)
# and the global position maps are decayed. The backbone and text tower are
# frozen (their parameters get no gradient, so the optimizer leaves them be).
# To fine-tune the backbone with layer-wise lr decay, use
# constructor='ViTaminLayerDecayOptimizerConstructor' with paramwise_cfg.decay_rate.
max_iters = 368750
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    constructor='DefaultOptimWrapperConstructor',
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'transformer_decoder.query_feat': dict(decay_mult=0.0),
            'transformer_decoder.query_embed': dict(decay_mult=0.0),
            'transformer_decoder.level_embed': dict(decay_mult=0.0),
            'void_embedding': dict(decay_mult=0.0),
        }))
param_scheduler = dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
                       milestones=[327778, 355092], gamma=0.1)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)
