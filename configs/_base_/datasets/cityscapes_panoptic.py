# Cityscapes panoptic (19 classes: 8 things first, then 11 stuff): zero-shot PQ and mIoU.
# Layout under data_root (data/cityscapes/):
#   leftImg8bit/val/<city>/*_leftImg8bit.png
#   gtFine/cityscapes_panoptic_val.json + gtFine/cityscapes_panoptic_val/*.png
#       (cityscapesscripts/preparation/createPanopticImgs.py)
dataset_type = 'CityscapesPanopticDataset'
data_root = 'data/cityscapes/'
backend_args = None
cityscapes_test_scale = (2048, 1024)
train_vocabulary = 'dataset:coco_panoptic'

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=cityscapes_test_scale, keep_ratio=True),
    dict(type='mmdet.LoadPanopticAnnotations', backend_args=backend_args),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'seg_map_path', 'segments_info', 'ori_shape',
                    'img_shape', 'scale_factor')),
]
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='gtFine/cityscapes_panoptic_val.json',
                 data_prefix=dict(img='leftImg8bit/val/', seg='gtFine/cityscapes_panoptic_val/'),
                 test_mode=True, pipeline=test_pipeline, backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='OpenVocabPanopticMetric', train_vocabulary=train_vocabulary),
    dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'], train_vocabulary=train_vocabulary),
]
test_evaluator = val_evaluator
