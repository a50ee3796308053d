"""MMEngine models (segmentors, detectors), losses and matching; training-free baseline."""
