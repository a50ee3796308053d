"""Open-vocab metric wrappers (seen / unseen splits) over pycocotools, lvis, panopticapi,
mmdet and mmseg metrics."""
from .lvis_compat import lvis_numpy_compat
from .ov_coco_metric import OVCocoMetric
from .ov_lvis_metric import OVLVISMetric

__all__ = ['OVCocoMetric', 'OVLVISMetric', 'lvis_numpy_compat']
