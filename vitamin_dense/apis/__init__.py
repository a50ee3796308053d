"""Python inference API used by demo/ and by users.

``Segmenter`` (build once, call with image + vocabulary), ``SegmentationResult``
(labels, shares, probabilities, overlay) and the ``Predictor`` extension point
(``register_predictor``) through which trained heads plug in; ``Detector`` (build
once, call with image + vocabulary or an exemplar box) and ``DetectionResult``.
"""
from .predictor import (FeatureCache, PreparedImage, Predictor, TrainingFreePredictor,
                        available_predictors, build_predictor, content_key, register_predictor)
from .results import NO_CLASS, SegmentationResult
from .segmenter import DEFAULT_MAX_SIDE, Segmenter, resolve_device
from .fcclip_predictor import FCCLIPPredictor, MaskSegmentationResult  # noqa: E402  (registers 'fcclip')
from .detection_results import DetectionResult  # noqa: E402
from .detector import (Detector, QueryError, build_detector, check_query_box,  # noqa: E402
                       default_detector_config, parse_box)
from .coco_outputs import CocoWriter  # noqa: E402
from .inferencer import DenseInferencer  # noqa: E402

__all__ = [
    'Segmenter', 'SegmentationResult', 'NO_CLASS', 'Predictor', 'PreparedImage',
    'TrainingFreePredictor', 'FeatureCache', 'register_predictor', 'build_predictor',
    'available_predictors', 'content_key', 'resolve_device', 'DEFAULT_MAX_SIDE',
    'FCCLIPPredictor', 'MaskSegmentationResult', 'Detector', 'DetectionResult', 'QueryError',
    'build_detector', 'check_query_box', 'default_detector_config', 'parse_box',
    'DenseInferencer', 'CocoWriter',
]
