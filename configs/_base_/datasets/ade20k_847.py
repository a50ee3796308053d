# ADE20K-Full, 847 classes: zero-shot mIoU (mmseg pipeline; SegDataSample with gt_sem_seg).
# Layout under data_root (data/ADE20K_2021_17_01/):
#   images_detectron2/validation/*.jpg, annotations_detectron2/validation/*.tif
#   (uint16 train ids, 65535 = void; MaskFormer / FC-CLIP prepare_ade20k_full_sem_seg.py)
#   ade847_classes.txt: the class names in train-id order, written by
#   python tools/extract_class_names.py <prepare script> data/ADE20K_2021_17_01/ade847_classes.txt
# Seen / unseen: classes named like a COCO panoptic class are "seen" (FC-CLIP's rule).
dataset_type = 'ADE20K847Dataset'
data_root = 'data/ADE20K_2021_17_01/'
backend_args = None
test_scale = (2560, 640)
train_vocabulary = 'dataset:coco_panoptic'

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmseg.Resize', scale=test_scale, keep_ratio=True),
    dict(type='LoadWideSemSegAnnotations', ignore_index=65535),
    dict(type='mmseg.PackSegInputs'),
]
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='images_detectron2/validation', seg_map_path='annotations_detectron2/validation'),
                 classes_file='ade847_classes.txt',
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'],
                     train_vocabulary=train_vocabulary, ignore_index=65535)
test_evaluator = val_evaluator
