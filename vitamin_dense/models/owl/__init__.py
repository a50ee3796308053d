"""OWL-ViT / OWLv2-style detector: per-token heads, one-shot image queries,
set criterion, pseudo-negatives by meaning and top-k post-processing."""
from .criterion import OwlSetCriterion
from .detector import OwlDetector, stack_queries, valid_token_mask
from .heads import (OwlClassHead, OwlDetectionHead, OwlMLP, boxes_to_pixels, grid_box_bias,
                    masked_token_mean, pixels_to_boxes)
from .image_query import ImageQuery, select_query_embedding
from .negatives import (MeaningIndex, Protected, bundled_meaning, federated_query_mask,
                        filter_pool)
from .postprocess import OwlTestConfig, rescale_boxes, select_detections
from .text_queries import TrainableTextQueries

__all__ = [
    'OwlSetCriterion', 'OwlDetector', 'stack_queries', 'valid_token_mask', 'OwlClassHead',
    'OwlDetectionHead', 'OwlMLP', 'boxes_to_pixels', 'grid_box_bias', 'masked_token_mean',
    'pixels_to_boxes', 'ImageQuery', 'select_query_embedding', 'MeaningIndex', 'Protected',
    'bundled_meaning', 'federated_query_mask', 'filter_pool', 'OwlTestConfig', 'rescale_boxes',
    'select_detections', 'TrainableTextQueries',
]
