"""Data sets and transforms (through mmdet / mmseg pipelines), synthetic data, vocabularies."""
from .ov_coco import OVCocoDataset
from .ov_detection_base import DatasetError, DatasetFileError
from .ov_lvis import OVLVISDataset
from .ov_splits import OV_COCO_BASE_CLASSES, OV_COCO_NOVEL_CLASSES, ov_coco_classes

__all__ = ['OVCocoDataset', 'OVLVISDataset', 'DatasetError', 'DatasetFileError',
           'OV_COCO_BASE_CLASSES', 'OV_COCO_NOVEL_CLASSES', 'ov_coco_classes']
