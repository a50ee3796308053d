# The ViTamin-L-336 recipe (owl_vitamin_l_ovlvis.py) on ViTamin-S (224 px windows, CLIP
# embedding 384): same data, schedule and losses; test stride 160 px.
_base_ = './owl_vitamin_l_ovlvis.py'

model = dict(
    backbone=dict(model_name='ViTamin-S', weights='datacomp1b', train_stride=224,
                  test_stride=160),
    text_encoder=dict(model_name='ViTamin-S', weights='datacomp1b'),
)
