# FC-CLIP on a frozen ViTamin-XL-336 (336 px windows, no position embedding; strides as ViTamin-L).
# Everything else as fcclip_vitamin_l.py.
_base_ = ['./fcclip_vitamin_l.py']
model = dict(backbone=dict(model_name='ViTamin-XL-336', train_stride=336, test_stride=112))
