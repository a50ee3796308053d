# FC-CLIP on a frozen ViTamin-S (224 px windows; test stride 80 ~ a third of the window, snapped to the 16 px token grid).
# Everything else as fcclip_vitamin_l.py.
_base_ = ['./fcclip_vitamin_l.py']
model = dict(backbone=dict(model_name='ViTamin-S', train_stride=224, test_stride=80))
