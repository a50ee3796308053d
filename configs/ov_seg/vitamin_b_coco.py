# As vitamin_l_coco.py (COCO panoptic training, ADE20K-150 panoptic evaluation)
# with a frozen ViTamin-B; see configs/_base_/models/fcclip_vitamin_b.py for its
# windows and strides.
_base_ = ['./vitamin_l_coco.py']
model = dict(backbone=dict(model_name='ViTamin-B', train_stride=224, test_stride=80))
