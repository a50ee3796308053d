"""FC-CLIP (Sliding FC-CLIP in the ViTamin paper): segmentor, head, criterion,
pre- and post-processing, global position maps, the seen/unseen vocabulary
logic, and the converter of the released checkpoint (``convert``, used by
``tools/convert_checkpoint.py``)."""
from .criterion import MaskFormerCriterion
from .data_preprocessor import CLIP_MEAN, CLIP_STD, OVSegDataPreprocessor
from .global_position import GlobalPositionMaps
from .head import FCCLIPHead, binary_mask_pool, cosine_logits, geometric_ensemble
from .postprocess import INSTANCE_OFFSET, instance_inference, panoptic_inference, semantic_inference
from .segmentor import FCCLIPSegmentor, segment_targets
from .vocabulary import SegVocabulary, seen_flags

__all__ = [
    'MaskFormerCriterion', 'CLIP_MEAN', 'CLIP_STD', 'OVSegDataPreprocessor', 'FCCLIPHead',
    'binary_mask_pool', 'cosine_logits', 'geometric_ensemble', 'INSTANCE_OFFSET',
    'instance_inference', 'panoptic_inference', 'semantic_inference', 'FCCLIPSegmentor',
    'segment_targets', 'SegVocabulary', 'seen_flags', 'GlobalPositionMaps',
]
