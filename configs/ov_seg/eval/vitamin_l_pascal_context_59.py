# Zero-shot evaluation of the COCO-trained ViTamin-L FC-CLIP on Pascal Context 59 (PC-59): mIoU.
# The test vocabulary is the data set's class list (with synonyms); classes named
# like a COCO class are 'seen' (ensemble weight alpha, else beta).
#
#   python tools/test.py configs/ov_seg/eval/vitamin_l_pascal_context_59.py work_dirs/vitamin_l_coco/iter_368750.pth
#
# Other backbones: replace the model base by fcclip_vitamin_{s,b,xl}.py.
_base_ = [
    '../../_base_/models/fcclip_vitamin_l.py',
    '../../_base_/datasets/pascal_context_59.py',
    '../../_base_/default_runtime.py',
]
# semantic ground truth only: skip the panoptic and instance outputs
model = dict(test_cfg=dict(panoptic_on=False, instance_on=False))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
