# As vitamin_l_coco.py (COCO panoptic training, ADE20K-150 panoptic evaluation)
# with a frozen ViTamin-XL-336; see configs/_base_/models/fcclip_vitamin_xl.py for its
# windows and strides.
_base_ = ['./vitamin_l_coco.py']
model = dict(backbone=dict(model_name='ViTamin-XL-336', train_stride=336, test_stride=112))
