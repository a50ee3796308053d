"""Prediction heads: OWL-ViT-style detection, FC-CLIP-style segmentation (pure PyTorch)."""
from .fcclip_head import FCCLIPHead, binary_mask_pool, cosine_logits, geometric_ensemble
from .image_query import ImageQuery, select_query_embedding
from .ms_deform_attn import MSDeformAttn, mmcv_kernel_available, ms_deform_attn, ms_deform_attn_pytorch
from .owl_heads import (OwlClassHead, OwlDetectionHead, OwlMLP, boxes_to_pixels, grid_box_bias,
                        masked_token_mean, pixels_to_boxes)
from .pixel_decoder import DeformablePixelDecoder
from .position_encoding import SinePositionEncoding
from .transformer_decoder import DecoderStep, MaskedAttentionDecoder

__all__ = [
    'FCCLIPHead', 'binary_mask_pool', 'cosine_logits', 'geometric_ensemble', 'MSDeformAttn',
    'mmcv_kernel_available', 'ms_deform_attn', 'ms_deform_attn_pytorch',
    'DeformablePixelDecoder', 'SinePositionEncoding', 'DecoderStep', 'MaskedAttentionDecoder',
    'ImageQuery', 'select_query_embedding', 'OwlClassHead', 'OwlDetectionHead', 'OwlMLP',
    'boxes_to_pixels', 'grid_box_bias', 'masked_token_mean', 'pixels_to_boxes',
]
