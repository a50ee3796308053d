# Zero-shot evaluation of the COCO-trained ViTamin-L FC-CLIP on Cityscapes panoptic (val): PQ and mIoU.
# The test vocabulary is the data set's class list (with synonyms); classes named
# like a COCO class are 'seen' (ensemble weight alpha, else beta).
#
#   python tools/test.py configs/ov_seg/eval/vitamin_l_cityscapes_panoptic.py work_dirs/vitamin_l_coco/iter_368750.pth
#
# Other backbones: replace the model base by fcclip_vitamin_{s,b,xl}.py.
_base_ = [
    '../../_base_/models/fcclip_vitamin_l.py',
    '../../_base_/datasets/cityscapes_panoptic.py',
    '../../_base_/default_runtime.py',
]
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
