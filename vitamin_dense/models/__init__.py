"""MMEngine models (segmentors, detectors), losses and matching; training-free baseline."""
from .training_free import TrainingFreeSegmentor  # noqa: F401
