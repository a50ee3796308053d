# The ViTamin-L-336 recipe (owl_vitamin_l_ovlvis.py) on ViTamin-S (224 px windows, CLIP
# embedding 384): same data, schedule, losses and fine-tuning; stride 224 (its window) in
# training and at test.
_base_ = './owl_vitamin_l_ovlvis.py'

model = dict(
    backbone=dict(model_name='ViTamin-S', weights='datacomp1b', train_stride=224,
                  test_stride=224),
    text_encoder=dict(model_name='ViTamin-S', weights='datacomp1b'),
)
