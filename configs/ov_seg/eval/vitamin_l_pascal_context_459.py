# Zero-shot evaluation of the COCO-trained ViTamin-L FC-CLIP on Pascal Context 459 (PC-459): mIoU.
# The test vocabulary is FC-CLIP's names for the data set's classes (with synonyms); a
# class is 'seen' when one of them is a COCO panoptic name (ensemble weight alpha, else beta).
#
#   python tools/test.py configs/ov_seg/eval/vitamin_l_pascal_context_459.py work_dirs/vitamin_l_coco/iter_368750.pth
#
# Other backbones: replace the model base by fcclip_vitamin_{s,b,xl}.py.
_base_ = [
    '../../_base_/models/fcclip_vitamin_l.py',
    '../../_base_/datasets/pascal_context_459.py',
    '../../_base_/default_runtime.py',
]
# The reference's test input (what its learned position maps are made for): each
# image, its longer side resized to 1344 by the data set's pipeline, is padded with
# black to 1344 x 1344 before normalisation; predictions are cropped back by the
# reference's rule, then resized to the original size.
# Semantic ground truth only: the panoptic and instance outputs are skipped.
model = dict(
    data_preprocessor=dict(pad_to_size=(1344, 1344), pixel_pad_value=0, unpad='long_side'),
    test_cfg=dict(panoptic_on=False, instance_on=False))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
