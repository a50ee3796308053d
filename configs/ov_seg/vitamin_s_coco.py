# As vitamin_l_coco.py (COCO panoptic training, ADE20K-150 panoptic evaluation, the
# same data, input size and schedule) with a frozen ViTamin-S; see
# configs/_base_/models/fcclip_vitamin_s.py for its windows and strides. The
# reference published ViTamin-L only; a cheaper setting here: training windows do not
# overlap (train stride 224 = the 224 px window) where the ViTamin-L recipe trains
# at its test stride.
_base_ = ['./vitamin_l_coco.py']
model = dict(backbone=dict(model_name='ViTamin-S', train_stride=224, test_stride=80))
