# ADE20K-150 panoptic (100 things, 50 stuff): zero-shot PQ (and mIoU from the same masks).
# Layout under data_root (data/ADEChallengeData2016/):
#   images/validation/*.jpg
#   ade20k_panoptic_val.json + ade20k_panoptic_val/*.png   (mmdet's
#       tools/dataset_converters/ade20k2coco.py from annotations_instance/)
#   ade20k_instance_val.json (only for mask AP)
# Names: FC-CLIP's (vitamin_dense/datasets/vocabularies/). Seen / unseen: a class is "seen"
# when one of its names is a COCO panoptic name (FC-CLIP's rule).
dataset_type = 'OpenVocabADE20KPanopticDataset'
data_root = 'data/ADEChallengeData2016/'
backend_args = None
# Test input, the published ViTamin-L FC-CLIP's on every set: detectron2's
# ResizeShortestEdge with MIN_SIZE_TEST = MAX_SIZE_TEST = 1344 (mmdet's port of it),
# i.e. the longer side becomes 1344, PIL bilinear on the image decoded with PIL as
# detectron2 reads it; the model pads it with black to 1344 x 1344 before
# normalising (configs/ov_seg: the data preprocessor's pad_to_size).
test_size = 1344
train_vocabulary = 'dataset:coco_panoptic'

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=backend_args),
    dict(type='mmdet.ResizeShortestEdge', scale=test_size, max_size=test_size,
         resize_type='vitamin_dense.PILResize'),
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
