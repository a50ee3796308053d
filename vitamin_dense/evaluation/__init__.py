"""Open-vocabulary metric wrappers (seen / unseen splits) over pycocotools, lvis, panopticapi,
mmdet and mmseg metrics."""
from .instance_metric import OpenVocabCocoMetric
from .panoptic_metric import OpenVocabPanopticMetric
from .seen_split import eval_class_names, resolve_seen_flags
from .semantic_metric import OpenVocabIoUMetric

__all__ = ['OpenVocabCocoMetric', 'OpenVocabPanopticMetric', 'OpenVocabIoUMetric',
           'eval_class_names', 'resolve_seen_flags']
