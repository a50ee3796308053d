"""Sliding F-ViT, the ViTamin paper's open-vocabulary detector, on MMDetection 3.x.

``ensemble`` and ``adapter`` are plain PyTorch; the detector and its heads
subclass mmdet's and are registered only when the OpenMMLab stack imports.
"""
from ...utils.imports import openmmlab_available
from .adapter import SlidingFViTAdapter, fvit_default_levels
from .ensemble import check_exponent, cosine_logits, geometric_ensemble

__all__ = ['SlidingFViTAdapter', 'fvit_default_levels', 'check_exponent', 'cosine_logits',
           'geometric_ensemble']

if openmmlab_available():
    from .bbox_head import FViTBBoxHead
    from .detector import SlidingFViT
    from .roi_head import FViTRoIHead

    __all__ += ['FViTBBoxHead', 'FViTRoIHead', 'SlidingFViT']
