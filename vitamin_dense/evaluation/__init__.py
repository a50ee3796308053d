"""Open-vocab metric wrappers (seen / unseen splits) over pycocotools, lvis, panopticapi,
mmdet and mmseg metrics."""
from .instance_metric import OpenVocabCocoMetric
from .lvis_compat import lvis_numpy_compat
from .ov_coco_metric import OVCocoMetric
from .ov_lvis_metric import OVLVISMetric
from .panoptic_metric import OpenVocabPanopticMetric
from .seen_split import eval_class_names, resolve_seen_flags
from .semantic_metric import OpenVocabIoUMetric

__all__ = ['OpenVocabCocoMetric', 'OpenVocabPanopticMetric', 'OpenVocabIoUMetric',
           'eval_class_names', 'resolve_seen_flags', 'OVCocoMetric', 'OVLVISMetric',
           'lvis_numpy_compat']
