"""MMEngine models, one folder per meta-architecture (``fcclip/``, ``owl/``,
``fvit/``), with the training-free baseline and shared necks beside them."""
from . import necks  # noqa: F401
from . import fcclip, owl  # noqa: F401
from . import fvit  # noqa: F401
from .fcclip import (INSTANCE_OFFSET, FCCLIPSegmentor, MaskFormerCriterion, OVSegDataPreprocessor,
                     SegVocabulary, instance_inference, panoptic_inference, seen_flags,
                     segment_targets, semantic_inference)
from .owl import (OwlDetector, OwlSetCriterion, OwlTestConfig, rescale_boxes, select_detections,
                  stack_queries, valid_token_mask)
from .training_free import TrainingFreeSegmentor

__all__ = [
    'MaskFormerCriterion', 'OVSegDataPreprocessor', 'FCCLIPSegmentor', 'segment_targets',
    'INSTANCE_OFFSET', 'instance_inference', 'panoptic_inference', 'semantic_inference',
    'SegVocabulary', 'seen_flags', 'TrainingFreeSegmentor',
    'OwlSetCriterion', 'OwlDetector', 'stack_queries', 'valid_token_mask', 'OwlTestConfig',
    'rescale_boxes', 'select_detections',
]
