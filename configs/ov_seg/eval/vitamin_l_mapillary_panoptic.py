# Zero-shot evaluation of the COCO-trained ViTamin-L FC-CLIP on Mapillary Vistas panoptic (val): PQ and mIoU.
# The test vocabulary is FC-CLIP's names for the data set's classes (with synonyms); a
# class is 'seen' when one of them is a COCO panoptic name (ensemble weight alpha, else beta).
#
#   python tools/test.py configs/ov_seg/eval/vitamin_l_mapillary_panoptic.py work_dirs/vitamin_l_coco/iter_368750.pth
#
# Other backbones: replace the model base by fcclip_vitamin_{s,b,xl}.py.
_base_ = [
    '../../_base_/models/fcclip_vitamin_l.py',
    '../../_base_/datasets/mapillary_panoptic.py',
    '../../_base_/default_runtime.py',
]
# The reference's test input (what its learned position maps are made for): each
# image, its longer side resized to 1344 by the data set's pipeline, is padded with
# black to 1344 x 1344 before normalisation; predictions are cropped back by the
# reference's rule, then resized to the original size. (FC-CLIP's ConvNeXt configs test
# this set at 1024 px short / 2560 px long side; the ViTamin model cannot: its position
# maps fix the input at 1344 x 1344, so every set is tested at 1344.)
model = dict(
    data_preprocessor=dict(pad_to_size=(1344, 1344), pixel_pad_value=0, unpad='long_side'))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
