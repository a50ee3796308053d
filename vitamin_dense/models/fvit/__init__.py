"""Sliding F-ViT, the ViTamin paper's open-vocabulary detector, on MMDetection 3.x.

``ensemble``, ``adapter`` and ``text`` (the published class-embedding recipe)
are plain PyTorch; the detector, its heads and its data preprocessor subclass
mmdet's and are registered only when the OpenMMLab stack imports. ``convert``
turns the released MMDetection 2.x checkpoints into ours
(``tools/convert_checkpoint.py fvit``).
"""
from ...utils.imports import openmmlab_available
from .adapter import SlidingFViTAdapter, fvit_default_levels
from .ensemble import check_exponent, cosine_logits, geometric_ensemble
from .text import FVIT_TEMPLATES, FViTTextEncoder, fvit_prompts

__all__ = ['SlidingFViTAdapter', 'fvit_default_levels', 'check_exponent', 'cosine_logits',
           'geometric_ensemble', 'FVIT_TEMPLATES', 'FViTTextEncoder', 'fvit_prompts']

if openmmlab_available():
    from .bbox_head import FViTBBoxHead
    from .data_preprocessor import FViTDataPreprocessor
    from .detector import SlidingFViT
    from .roi_head import FViTRoIHead
    from .rpn_head import FViTRPNHead

    __all__ += ['FViTBBoxHead', 'FViTDataPreprocessor', 'FViTRoIHead', 'FViTRPNHead',
                'SlidingFViT']
