"""MMEngine models (segmentors, detectors), losses and matching; training-free baseline."""
from . import necks  # noqa: F401,E402
from .training_free import TrainingFreeSegmentor  # noqa: F401
