"""Python inference API used by demo/ and by users.

``Segmenter`` (build once, call with image + vocabulary), ``SegmentationResult``
(labels, shares, probabilities, overlay) and the ``Predictor`` extension point
(``register_predictor``) through which trained heads plug in.
"""
from .predictor import (FeatureCache, PreparedImage, Predictor, TrainingFreePredictor,
                        available_predictors, build_predictor, content_key, register_predictor)
from .results import NO_CLASS, SegmentationResult
from .segmenter import DEFAULT_MAX_SIDE, Segmenter, resolve_device

__all__ = [
    'Segmenter', 'SegmentationResult', 'NO_CLASS', 'Predictor', 'PreparedImage',
    'TrainingFreePredictor', 'FeatureCache', 'register_predictor', 'build_predictor',
    'available_predictors', 'content_key', 'resolve_device', 'DEFAULT_MAX_SIDE',
]
