# Pascal VOC 2012 without background, 20 classes (PAS-20): zero-shot mIoU (mmseg pipeline; SegDataSample with gt_sem_seg).
# Layout under data_root (data/VOCdevkit/VOC2012/):
#   JPEGImages/*.jpg, SegmentationClass/*.png, ImageSets/Segmentation/val.txt
#   (background and boundary pixels are ignored)
# Seen / unseen: classes named like a COCO panoptic class are "seen" (FC-CLIP's rule).
dataset_type = 'PascalVOC20Dataset'
data_root = 'data/VOCdevkit/VOC2012/'
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
                 data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
                 ann_file='ImageSets/Segmentation/val.txt',
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'],
                     train_vocabulary=train_vocabulary)
test_evaluator = val_evaluator
