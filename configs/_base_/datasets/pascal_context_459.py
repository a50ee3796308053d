# Pascal Context full, 459 classes (PC-459): zero-shot mIoU (mmseg pipeline; SegDataSample with gt_sem_seg).
# Layout under data_root (data/pascal_ctx_d2/):
#   images/validation/*.jpg, annotations_ctx459/validation/*.tif (uint16, Pascal Context
#   id - 1, 65535 = void; ODISE / FC-CLIP prepare_pascal_ctx_full_sem_seg.py)
#   class names: Pascal Context's own labels.txt ("<id>: <name>" lines), by default
#   ../VOCdevkit/VOC2010/labels.txt relative to data_root
# Seen / unseen: classes named like a COCO panoptic class are "seen" (FC-CLIP's rule).
dataset_type = 'PascalContext459Dataset'
data_root = 'data/pascal_ctx_d2/'
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
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations_ctx459/validation'),
                 classes_file='../VOCdevkit/VOC2010/labels.txt',
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'],
                     train_vocabulary=train_vocabulary, ignore_index=65535)
test_evaluator = val_evaluator
