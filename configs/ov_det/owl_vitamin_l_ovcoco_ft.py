# owl_vitamin_l_ovcoco.py with the last 8 of ViTamin-L's 31 blocks fine-tuned (gradient
# checkpointing, layer-wise lr decay 0.8 through ViTaminLayerDecayOptimizerConstructor), the
# CLIP projection (fc_norm, proj) kept frozen. OWL-ViT fine-tunes its whole tower; a partly
# frozen tower keeps more of CLIP's open-vocabulary knowledge for the novel classes.
_base_ = './owl_vitamin_l_ovcoco.py'

model = dict(backbone=dict(frozen=False, trainable_blocks=8, freeze_clip_head=True,
                           grad_checkpointing=True))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    constructor='ViTaminLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.8),
    clip_grad=dict(max_norm=1.0, norm_type=2))
