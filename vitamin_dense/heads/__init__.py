"""Shared pure-PyTorch heads: multi-scale deformable attention, the deformable
pixel decoder and the masked-attention (Mask2Former) transformer decoder.
Heads that only one meta-architecture uses live in its folder under
``vitamin_dense/models/``."""
from .ms_deform_attn import MSDeformAttn, mmcv_kernel_available, ms_deform_attn, ms_deform_attn_pytorch
from .pixel_decoder import DeformablePixelDecoder
from .position_encoding import SinePositionEncoding
from .transformer_decoder import DecoderStep, MaskedAttentionDecoder

__all__ = [
    'MSDeformAttn', 'mmcv_kernel_available', 'ms_deform_attn', 'ms_deform_attn_pytorch',
    'DeformablePixelDecoder', 'SinePositionEncoding', 'DecoderStep', 'MaskedAttentionDecoder',
]
