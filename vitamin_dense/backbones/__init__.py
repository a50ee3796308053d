"""ViTamin backbone, sliding-window extraction, dense CLIP map and mask pooling."""
from .clip_loader import create_vitamin_clip, read_state_dict, resolve_weights_file
from .sliding_window import (WindowGrid, check_stride, count_windows, plan_windows,
                             sliding_window_forward, snap_stride, window_starts)
from .variants import TINY_VARIANTS, VariantInfo, get_variant, list_variants
from .vitamin import LEVEL_STRIDES, LEVELS, ShapeSpec, ViTaminBackbone

__all__ = [
    'create_vitamin_clip', 'read_state_dict', 'resolve_weights_file', 'WindowGrid',
    'check_stride', 'count_windows', 'plan_windows', 'sliding_window_forward', 'snap_stride',
    'window_starts', 'TINY_VARIANTS', 'VariantInfo', 'get_variant', 'list_variants',
    'LEVEL_STRIDES', 'LEVELS', 'ShapeSpec', 'ViTaminBackbone',
]
