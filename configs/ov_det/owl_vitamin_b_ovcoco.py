# The ViTamin-L-336 recipe (owl_vitamin_l_ovcoco.py) on ViTamin-B (224 px windows, CLIP
# embedding 512): same data, schedule and losses; test stride 160 px.
_base_ = './owl_vitamin_l_ovcoco.py'

model = dict(
    backbone=dict(model_name='ViTamin-B', weights='datacomp1b', train_stride=224,
                  test_stride=160),
    text_encoder=dict(model_name='ViTamin-B', weights='datacomp1b'),
)
