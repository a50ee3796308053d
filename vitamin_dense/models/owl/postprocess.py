"""From per-token head outputs to final detections (pure torch + torchvision).

Scores are per (token, query) pair, so one token may report several classes
(as OWL-ViT's LVIS evaluation does). The pairs above ``score_thr`` are ranked
and the best ``max_per_img`` remain: OWL-ViT's top-k with no NMS (set-prediction
training already makes one token per object), the default. Optional
class-wise NMS (``nms_iou``; torchvision's ``batched_nms``, no compiled mmcv op)
runs on the best ``nms_pre`` pairs first.
Boxes are then mapped from the network input back to the original image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...errors import ConfigError

SCORE_MODES = ('class', 'class_x_objectness')


@dataclass
class OwlTestConfig:
    """Inference settings (the ``test_cfg`` of the detector).

    Args:
        score_thr: drop (token, class) pairs scoring below this.
        max_per_img: detections kept per image (COCO 100, LVIS 300).
        nms_pre: best pairs considered before NMS.
        nms_iou: IoU threshold of class-wise NMS; None (default, OWL-ViT)
            disables NMS.
        score_mode: ``'class'`` (sigmoid of the class logit, OWL-ViT) or
            ``'class_x_objectness'`` (times the OWLv2 objectness probability).
    """

    score_thr: float = 0.05
    max_per_img: int = 100
    nms_pre: int = 1000
    nms_iou: Optional[float] = None
    score_mode: str = 'class'

    def __post_init__(self):
        if self.score_mode not in SCORE_MODES:
            raise ConfigError(f"unknown score_mode '{self.score_mode}'; choose from {SCORE_MODES}")
        if self.max_per_img < 1 or self.nms_pre < 1:
            raise ConfigError('max_per_img and nms_pre must be at least 1')
        if self.nms_iou is not None and not 0 < self.nms_iou <= 1:
            raise ConfigError(f'nms_iou must be in (0, 1] or None, got {self.nms_iou}')

    @classmethod
    def from_cfg(cls, cfg) -> 'OwlTestConfig':
        if isinstance(cfg, cls):
            return cfg
        cfg = dict(cfg or {})
        nms = cfg.pop('nms', 'unset')
        if nms != 'unset':  # mmdet style: nms=dict(type='nms', iou_threshold=0.5) or None
            cfg['nms_iou'] = None if not nms else float(nms.get('iou_threshold', 0.5))
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f'unknown test_cfg key(s) {unknown}; known: {sorted(known)}')
        return cls(**cfg)


def token_scores(logits: Tensor, objectness: Optional[Tensor], mode: str) -> Tensor:
    """``(N, Q)`` probabilities from class logits (and objectness logits)."""
    scores = logits.float().sigmoid()
    if mode == 'class_x_objectness':
        if objectness is None:
            raise ConfigError("score_mode 'class_x_objectness' needs a head with objectness")
        scores = scores * objectness.float().sigmoid()[:, None]
    return scores


def select_detections(scores: Tensor, boxes_xyxy: Tensor, cfg: OwlTestConfig
                      ) -> Tuple[Tensor, Tensor, Tensor]:
    """Top pairs of one image: ``(boxes (K, 4), scores (K,), labels (K,))``.

    Args:
        scores: ``(N, Q)`` per token and query.
        boxes_xyxy: ``(N, 4)`` per token.
    """
    from torchvision.ops import batched_nms
    n, q = scores.shape
    flat = scores.reshape(-1)
    keep = torch.nonzero((flat > cfg.score_thr) & torch.isfinite(flat)).flatten()
    if keep.numel() > cfg.nms_pre:
        top = flat[keep].topk(cfg.nms_pre).indices
        keep = keep[top]
    pair_scores = flat[keep]
    tokens = torch.div(keep, q, rounding_mode='floor')
    labels = keep % q
    boxes = boxes_xyxy[tokens]
    if cfg.nms_iou is not None and keep.numel():
        kept = batched_nms(boxes.float(), pair_scores.float(), labels, cfg.nms_iou)
    else:
        kept = pair_scores.argsort(descending=True)
    kept = kept[:cfg.max_per_img]
    return boxes[kept], pair_scores[kept], labels[kept]


def rescale_boxes(boxes: Tensor, scale_factor: Optional[Sequence[float]],
                  ori_shape: Optional[Sequence[int]]) -> Tensor:
    """Input-pixel ``xyxy`` -> original-image pixels (undo the resize, clip to the image).

    ``scale_factor`` is ``(w_scale, h_scale)`` as mmdet's ``Resize`` records
    it (input = original x scale); ``ori_shape`` is ``(h, w)``.
    """
    if scale_factor is not None:
        sw, sh = float(scale_factor[0]), float(scale_factor[1])
        boxes = boxes / boxes.new_tensor([sw, sh, sw, sh])
    if ori_shape is not None:
        h, w = int(ori_shape[0]), int(ori_shape[1])
        boxes = torch.stack((boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                             boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)), dim=1)
    return boxes


__all__ = ['OwlTestConfig', 'SCORE_MODES', 'token_scores', 'select_detections', 'rescale_boxes']
