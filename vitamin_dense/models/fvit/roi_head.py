"""F-ViT's RoI head: mmdet's StandardRoIHead plus CLIP scores of the boxes at test time.

Training is StandardRoIHead's (box head with the cosine text classifier, and
a class-agnostic mask head for LVIS). At test time the detector passes the
dense CLIP map of the frozen backbone; every RoI is pooled from it with
RoIAlign to 1x1 (``clip_roi_extractor``), and the box head combines those
CLIP embeddings' class scores with its own (:mod:`.ensemble`).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch.nn.functional as F
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.registry import MODELS as MMDET_MODELS
from torch import Tensor

from ...errors import ConfigError
from ...registry import MODELS, register_openmmlab_alias


@MODELS.register_module()
@register_openmmlab_alias('mmdet')
class FViTRoIHead(StandardRoIHead):
    """StandardRoIHead with a 1x1 RoIAlign on the dense CLIP map at test time.

    Args:
        clip_roi_extractor: RoI extractor over the stride-16 CLIP map,
            e.g. ``SingleRoIExtractor(RoIAlign(output_size=1, sampling_ratio=0),
            featmap_strides=[16], out_channels=clip_dim)``; None disables the
            ensemble (detector scores only).
        **kwargs: :class:`StandardRoIHead` arguments.
    """

    def __init__(self, clip_roi_extractor: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self.clip_roi_extractor = None
        if clip_roi_extractor is not None:
            self.clip_roi_extractor = MMDET_MODELS.build(clip_roi_extractor)
            if len(self.clip_roi_extractor.featmap_strides) != 1:
                raise ConfigError('clip_roi_extractor pools the one stride-16 CLIP map: '
                                  'featmap_strides must have one entry')
        self._clip_map: Optional[Tensor] = None

    def predict(self, x: Tuple[Tensor], rpn_results_list, batch_data_samples,
                rescale: bool = False, clip_map: Optional[Tensor] = None):
        """StandardRoIHead.predict, with the dense CLIP map ``(B, E, H/16, W/16)`` for the ensemble."""
        self._clip_map = clip_map if self.clip_roi_extractor is not None else None
        try:
            return super().predict(x, rpn_results_list, batch_data_samples, rescale=rescale)
        finally:
            self._clip_map = None

    def clip_roi_embeddings(self, clip_map: Tensor, rois: Tensor) -> Tensor:
        """``(N, E)`` CLIP embeddings of RoIs: per-token normalised map, RoIAlign 1x1, normalised."""
        pooled = self.clip_roi_extractor([F.normalize(clip_map.float(), dim=1)], rois.float())
        return F.normalize(pooled.flatten(1), dim=-1)

    def _bbox_forward(self, x: Tuple[Tensor], rois: Tensor) -> dict:
        bbox_feats = self.bbox_roi_extractor(x[:self.bbox_roi_extractor.num_inputs], rois)
        if self.with_shared_head:
            bbox_feats = self.shared_head(bbox_feats)
        clip_embeddings = None
        if self._clip_map is not None and not self.training:
            clip_embeddings = self.clip_roi_embeddings(self._clip_map, rois)
        cls_score, bbox_pred = self.bbox_head(bbox_feats, clip_embeddings)
        return dict(cls_score=cls_score, bbox_pred=bbox_pred, bbox_feats=bbox_feats)
