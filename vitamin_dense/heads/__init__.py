"""Prediction heads: OWL-ViT-style detection, FC-CLIP-style segmentation (pure PyTorch)."""
from .image_query import ImageQuery, select_query_embedding  # noqa: F401
from .owl_heads import (OwlClassHead, OwlDetectionHead, OwlMLP, boxes_to_pixels,  # noqa: F401
                        grid_box_bias, masked_token_mean, pixels_to_boxes)
