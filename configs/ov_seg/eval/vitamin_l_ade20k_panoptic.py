# Zero-shot evaluation of the COCO-trained ViTamin-L FC-CLIP on ADE20K-150 panoptic: PQ / SQ / RQ and mIoU (from the panoptic masks).
# The test vocabulary is the data set's class list (with synonyms); classes named
# like a COCO class are 'seen' (ensemble weight alpha, else beta).
#
#   python tools/test.py configs/ov_seg/eval/vitamin_l_ade20k_panoptic.py work_dirs/vitamin_l_coco/iter_368750.pth
#
# Other backbones: replace the model base by fcclip_vitamin_{s,b,xl}.py.
_base_ = [
    '../../_base_/models/fcclip_vitamin_l.py',
    '../../_base_/datasets/ade20k_panoptic.py',
    '../../_base_/default_runtime.py',
]
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
