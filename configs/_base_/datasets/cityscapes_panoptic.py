# Cityscapes panoptic (19 classes: 8 things first, then 11 stuff): zero-shot PQ and mIoU.
# Layout under data_root (data/cityscapes/):
#   leftImg8bit/val/<city>/*_leftImg8bit.png
#   gtFine/cityscapes_panoptic_val.json + gtFine/cityscapes_panoptic_val/*.png
#       (cityscapesscripts/preparation/createPanopticImgs.py)
dataset_type = 'CityscapesPanopticDataset'
data_root = 'data/cityscapes/'
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
                 ann_file='gtFine/cityscapes_panoptic_val.json',
                 data_prefix=dict(img='leftImg8bit/val/', seg='gtFine/cityscapes_panoptic_val/'),
                 test_mode=True, pipeline=test_pipeline, backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='OpenVocabPanopticMetric', train_vocabulary=train_vocabulary),
    dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'], train_vocabulary=train_vocabulary),
]
test_evaluator = val_evaluator
