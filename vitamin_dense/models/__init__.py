"""MMEngine models (segmentors, detectors), losses and matching; training-free baseline."""
from . import necks  # noqa: F401,E402
from . import fvit  # noqa: F401,E402
from .training_free import TrainingFreeSegmentor  # noqa: F401
from .owl_criterion import OwlSetCriterion  # noqa: F401
from .owl_detector import OwlDetector, stack_queries, valid_token_mask  # noqa: F401
from .owl_postprocess import OwlTestConfig, rescale_boxes, select_detections  # noqa: F401
from .owl_vocabulary_hook import DetVocabularyHook  # noqa: F401
