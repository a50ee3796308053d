# Pascal Context full, 459 classes (PC-459): zero-shot mIoU (mmseg pipeline; SegDataSample with gt_sem_seg).
# Layout under data_root (data/pascal_ctx_d2/):
#   images/validation/*.jpg, annotations_ctx459/validation/*.tif (uint16, Pascal Context
#   id - 1, 65535 = void; ODISE / FC-CLIP prepare_pascal_ctx_full_sem_seg.py)
# Class names: FC-CLIP's (vitamin_dense/datasets/vocabularies/pc459.txt, Pascal Context id
# order); classes_file=PATH (e.g. Pascal Context's labels.txt) replaces them.
# Seen / unseen: a class is "seen" when one of its names is a COCO panoptic name (FC-CLIP's rule).
dataset_type = 'PascalContext459Dataset'
data_root = 'data/pascal_ctx_d2/'
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
    dict(type='LoadWideSemSegAnnotations', ignore_index=65535),
    dict(type='mmseg.PackSegInputs'),
]
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations_ctx459/validation'),
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'],
                     train_vocabulary=train_vocabulary, ignore_index=65535)
test_evaluator = val_evaluator
