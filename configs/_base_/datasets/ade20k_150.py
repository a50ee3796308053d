# ADE20K-150 semantic: zero-shot mIoU (mmseg pipeline; SegDataSample with gt_sem_seg).
# Layout under data_root (data/ADEChallengeData2016/):
#   images/validation/*.jpg, annotations/validation/*.png (labels 1..150, 0 = void)
# Seen / unseen: classes named like a COCO panoptic class are "seen" (FC-CLIP's rule).
dataset_type = 'OpenVocabADE20KDataset'
data_root = 'data/ADEChallengeData2016/'
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
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'],
                     train_vocabulary=train_vocabulary)
test_evaluator = val_evaluator
