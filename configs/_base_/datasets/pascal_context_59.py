# Pascal Context, 59 classes (PC-59): zero-shot mIoU (mmseg pipeline; SegDataSample with gt_sem_seg).
# Layout under data_root (data/VOCdevkit/VOC2010/):
#   JPEGImages/*.jpg, SegmentationClassContext/*.png, ImageSets/SegmentationContext/val.txt
#   (mmsegmentation tools/dataset_converters/pascal_context.py)
# Seen / unseen: classes named like a COCO panoptic class are "seen" (FC-CLIP's rule).
dataset_type = 'OpenVocabPascalContext59Dataset'
data_root = 'data/VOCdevkit/VOC2010/'
backend_args = None
test_scale = (2560, 640)
train_vocabulary = 'dataset:coco_panoptic'

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmseg.Resize', scale=test_scale, keep_ratio=True),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='mmseg.PackSegInputs'),
]
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
                 ann_file='ImageSets/SegmentationContext/val.txt',
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'],
                     train_vocabulary=train_vocabulary)
test_evaluator = val_evaluator
