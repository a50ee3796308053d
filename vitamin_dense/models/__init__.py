"""MMEngine models (segmentors, detectors), losses and matching; training-free baseline."""
from . import necks  # noqa: F401,E402
from . import fvit  # noqa: F401,E402
from .criterion import MaskFormerCriterion
from .data_preprocessor import OVSegDataPreprocessor
from .fcclip_segmentor import FCCLIPSegmentor, segment_targets
from .postprocess import (INSTANCE_OFFSET, instance_inference, panoptic_inference,
                          semantic_inference)
from .seg_vocabulary import SegVocabulary, seen_flags
from .training_free import TrainingFreeSegmentor  # noqa: F401
from .owl_criterion import OwlSetCriterion
from .owl_detector import OwlDetector, stack_queries, valid_token_mask
from .owl_postprocess import OwlTestConfig, rescale_boxes, select_detections

__all__ = [
    'MaskFormerCriterion', 'OVSegDataPreprocessor', 'FCCLIPSegmentor', 'segment_targets',
    'INSTANCE_OFFSET', 'instance_inference', 'panoptic_inference', 'semantic_inference',
    'SegVocabulary', 'seen_flags', 'TrainingFreeSegmentor',
    'OwlSetCriterion', 'OwlDetector', 'stack_queries', 'valid_token_mask', 'OwlTestConfig',
    'rescale_boxes', 'select_detections',
]
