# Mapillary Vistas v1.2 panoptic (65 classes; things first, from the file's isthing flags).
# Layout under data_root (data/mapillary_vistas/):
#   validation/images/*.jpg
#   validation/panoptic/panoptic_2018.json + validation/panoptic/*.png
dataset_type = 'MapillaryPanopticDataset'
data_root = 'data/mapillary_vistas/'
backend_args = None
mapillary_test_scale = (4096, 2048)
train_vocabulary = 'dataset:coco_panoptic'

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=mapillary_test_scale, keep_ratio=True),
    dict(type='mmdet.LoadPanopticAnnotations', backend_args=backend_args),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'seg_map_path', 'segments_info', 'ori_shape',
                    'img_shape', 'scale_factor')),
]
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='validation/panoptic/panoptic_2018.json',
                 data_prefix=dict(img='validation/images/', seg='validation/panoptic/'),
                 test_mode=True, pipeline=test_pipeline, backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='OpenVocabPanopticMetric', train_vocabulary=train_vocabulary),
    dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'], train_vocabulary=train_vocabulary),
]
test_evaluator = val_evaluator
