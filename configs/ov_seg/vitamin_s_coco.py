# As vitamin_l_coco.py (COCO panoptic training, ADE20K-150 panoptic evaluation)
# with a frozen ViTamin-S; see configs/_base_/models/fcclip_vitamin_s.py for its
# windows and strides.
_base_ = ['./vitamin_l_coco.py']
model = dict(backbone=dict(model_name='ViTamin-S', train_stride=224, test_stride=80))
