# ADE20K-150 panoptic (100 things, 50 stuff): zero-shot PQ (and mIoU from the same masks).
# Layout under data_root (data/ADEChallengeData2016/):
#   images/validation/*.jpg
#   ade20k_panoptic_val.json + ade20k_panoptic_val/*.png   (mmdet's
#       tools/dataset_converters/ade20k2coco.py from annotations_instance/)
#   ade20k_instance_val.json (only for mask AP)
# Seen / unseen: classes named like a COCO panoptic class are "seen" (FC-CLIP's rule).
dataset_type = 'OpenVocabADE20KPanopticDataset'
data_root = 'data/ADEChallengeData2016/'
backend_args = None
ade_test_scale = (2560, 640)
train_vocabulary = 'dataset:coco_panoptic'

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=ade_test_scale, keep_ratio=True),
    dict(type='mmdet.LoadPanopticAnnotations', backend_args=backend_args),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'seg_map_path', 'segments_info', 'ori_shape',
                    'img_shape', 'scale_factor')),
]
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='ade20k_panoptic_val.json',
                 data_prefix=dict(img='images/validation/', seg='ade20k_panoptic_val/'),
                 test_mode=True, pipeline=test_pipeline, backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='OpenVocabPanopticMetric', train_vocabulary=train_vocabulary),
    dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'], train_vocabulary=train_vocabulary),
]
test_evaluator = val_evaluator
ade_instance_metric = dict(type='OpenVocabCocoMetric', metric='segm',
                           ann_file=data_root + 'ade20k_instance_val.json',
                           train_vocabulary=train_vocabulary)
