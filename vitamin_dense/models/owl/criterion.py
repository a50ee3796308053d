"""Set-prediction training of the OWL head: Hungarian matching and OWL-ViT's losses.

Every token is one prediction. Each image's tokens are matched one-to-one to
its ground-truth boxes with mmdet's ``HungarianAssigner``; matched tokens
learn their box and their class, every other token learns "no object" for
every query (sigmoid focal loss over the token x query logits). The OWLv2
objectness head learns "matched to any box" with the same focal loss on its
detached features.

The defaults are OWL-ViT's (scenic ``configs/clip_l14.py`` and
``matching_base_models.py``):

* costs and losses weighted 1 / 1 / 1 (class / L1 / GIoU), focal ``alpha`` 0.3
  and ``gamma`` 2 in both;
* the matching L1 cost on normalised ``cx, cy, w, h``, the L1 loss on the
  normalised corners ``x1, y1, x2, y2``; both normalised by the image's square
  box frame (the same frame the head decodes in);
* per-example normalisation: each image's summed losses are divided by its own
  number of boxes (at least 1), then averaged over the images; ``'global'``
  divides the batch sums by the boxes of all images on all ranks (DETR).

mmdet is imported only when the criterion is first used, so the detector's
inference path never needs mmcv or mmdet. The losses are mmdet's, called with
``reduction_override='none'`` so that the reduction is ours; the focal loss is
given one-hot targets, which makes mmdet's ``FocalLoss`` take its pure-PyTorch
branch on every device and lets excluded queries be masked with a weight.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...errors import ConfigError
from .heads import boxes_to_pixels

OWL_FOCAL_ALPHA = 0.3
OWL_FOCAL_GAMMA = 2.0
NORMALIZATIONS = ('per_example', 'global')
L1_FORMATS = ('xyxy', 'cxcywh')

DEFAULT_ASSIGNER = dict(
    type='mmdet.HungarianAssigner',
    match_costs=[
        dict(type='mmdet.FocalLossCost', weight=1.0, alpha=OWL_FOCAL_ALPHA, gamma=OWL_FOCAL_GAMMA),
        dict(type='mmdet.BBoxL1Cost', weight=1.0, box_format='xywh'),
        dict(type='mmdet.IoUCost', iou_mode='giou', weight=1.0),
    ])
DEFAULT_LOSS_CLS = dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=OWL_FOCAL_GAMMA,
                        alpha=OWL_FOCAL_ALPHA, loss_weight=1.0)
DEFAULT_LOSS_BBOX = dict(type='mmdet.L1Loss', loss_weight=1.0)
DEFAULT_LOSS_IOU = dict(type='mmdet.GIoULoss', loss_weight=1.0)
DEFAULT_LOSS_OBJ = dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=OWL_FOCAL_GAMMA,
                        alpha=OWL_FOCAL_ALPHA, loss_weight=1.0)


class OwlSetCriterion:
    """Matching and losses for :class:`~vitamin_dense.models.OwlDetector`.

    Args:
        assigner: config of the assigner (mmdet's ``HungarianAssigner`` with
            ``FocalLossCost``, ``BBoxL1Cost`` (xywh) and ``IoUCost`` (giou)).
        loss_cls / loss_bbox / loss_iou / loss_obj: mmdet loss configs;
            ``loss_obj=None`` skips the objectness loss.
        normalization: ``'per_example'`` (OWL-ViT) or ``'global'`` (DETR).
        l1_format: the box L1 loss on ``'xyxy'`` corners (OWL-ViT) or on
            ``'cxcywh'`` (DETR).
    """

    def __init__(self, assigner: Optional[dict] = None, loss_cls: Optional[dict] = None,
                 loss_bbox: Optional[dict] = None, loss_iou: Optional[dict] = None,
                 loss_obj: Optional[dict] = 'default', normalization: str = 'per_example',
                 l1_format: str = 'xyxy'):
        if normalization not in NORMALIZATIONS:
            raise ConfigError(f"unknown loss normalization '{normalization}'; choose from "
                              f'{NORMALIZATIONS}')
        if l1_format not in L1_FORMATS:
            raise ConfigError(f"unknown l1_format '{l1_format}'; choose from {L1_FORMATS}")
        self.normalization = normalization
        self.l1_format = l1_format
        self.cfgs = dict(
            assigner=copy.deepcopy(assigner or DEFAULT_ASSIGNER),
            loss_cls=copy.deepcopy(loss_cls or DEFAULT_LOSS_CLS),
            loss_bbox=copy.deepcopy(loss_bbox or DEFAULT_LOSS_BBOX),
            loss_iou=copy.deepcopy(loss_iou or DEFAULT_LOSS_IOU),
            loss_obj=copy.deepcopy(DEFAULT_LOSS_OBJ if loss_obj == 'default' else loss_obj))
        self._built: Optional[Dict[str, object]] = None

    def _build(self) -> Dict[str, object]:
        if self._built is None:
            import mmdet.models  # noqa: F401  (registers mmdet's losses and costs)

            from ...registry import MODELS, TASK_UTILS
            # Built through our registries with mmdet's scope prefix: MMEngine then finds
            # them whatever the default scope is (a runner's 'vitamin_dense', or none).
            built = {'assigner': TASK_UTILS.build(_mmdet_scoped(self.cfgs['assigner']))}
            for name in ('loss_cls', 'loss_bbox', 'loss_iou', 'loss_obj'):
                cfg = self.cfgs[name]
                built[name] = MODELS.build(_mmdet_scoped(cfg)) if cfg else None
            self._built = built
        return self._built

    def assign(self, logits: Tensor, boxes_px: Tensor, gt_boxes: Tensor, gt_labels: Tensor,
               frame_hw: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        """Match one image's tokens to its boxes: ``(token indices, gt indices)``.

        ``frame_hw`` is the box frame in pixels (the L1 cost normalises by it).
        """
        from mmengine.structures import InstanceData
        if gt_boxes.shape[0] == 0:
            empty = torch.zeros(0, dtype=torch.long, device=logits.device)
            return empty, empty
        assigner = self._build()['assigner']
        pred = InstanceData(scores=logits.detach(), bboxes=boxes_px.detach())
        gt = InstanceData(bboxes=gt_boxes, labels=gt_labels)
        result = assigner.assign(pred, gt, img_meta={'img_shape': frame_hw})
        pos = torch.nonzero(result.gt_inds > 0).flatten()
        return pos, result.gt_inds[pos] - 1

    def __call__(self, outputs: Dict[str, Tensor], gt_boxes: Sequence[Tensor],
                 gt_labels: Sequence[Tensor], query_mask: Optional[Tensor] = None
                 ) -> Dict[str, Tensor]:
        """Losses of a batch.

        Args:
            outputs: the head's outputs (``logits (B, N, Q)``, ``boxes (B, N, 4)``
                normalised in each image's frame, ``frames (B,)`` in tokens,
                ``objectness (B, N)``).
            gt_boxes: per image ``(G_i, 4)`` xyxy boxes in input (canvas) pixels.
            gt_labels: per image ``(G_i,)`` query indices.
            query_mask: ``(B, Q)`` or ``(Q,)`` queries each image's class loss
                covers (None: all).
        """
        from torchvision.ops import box_convert
        built = self._build()
        logits, boxes = outputs['logits'], outputs['boxes']
        b, n, q = logits.shape
        frames = outputs.get('frames')
        if frames is None:  # the square of the grid's longer side, as the head's default
            frames = torch.full((b,), max(outputs['grid_hw']), dtype=torch.long)
        frames = frames.to(boxes.device)
        boxes_px = boxes_to_pixels(boxes, frames)

        cls_target = torch.zeros_like(logits)
        obj_target = logits.new_zeros(b, n)
        matched: List[Tuple[int, Tensor, Tensor]] = []
        for i in range(b):
            labels = gt_labels[i].to(logits.device).long()
            gts = gt_boxes[i].to(boxes_px)
            side = int(frames[i]) * 16
            tokens, gt_idx = self.assign(logits[i], boxes_px[i], gts, labels, (side, side))
            if tokens.numel() == 0:
                continue
            cls_target[i, tokens, labels[gt_idx]] = 1.0
            obj_target[i, tokens] = 1.0
            matched.append((i, tokens, gts[gt_idx]))

        weight = None
        if query_mask is not None:
            mask = query_mask.to(device=logits.device, dtype=logits.dtype)
            weight = (mask[None, :] if mask.dim() == 1 else mask[:, None, :]).expand_as(logits)
            logits = logits.masked_fill(weight == 0, 0.0)  # finite for the loss
            weight = weight.reshape(-1, q)
        cls = built['loss_cls'](logits.reshape(-1, q), cls_target.reshape(-1, q), weight=weight,
                                reduction_override='none').reshape(b, -1).sum(1)
        num_gts = [int(g.shape[0]) for g in gt_boxes]
        losses = {'loss_cls': self._reduce(cls, num_gts)}

        l1 = boxes.new_zeros(b)
        giou = boxes.new_zeros(b)
        for i, tokens, gt_px in matched:
            side = frames[i].to(boxes.dtype) * 16
            pred, target = boxes[i, tokens], gt_px / side
            if self.l1_format == 'xyxy':
                pred = box_convert(pred, 'cxcywh', 'xyxy')
            else:
                target = box_convert(target, 'xyxy', 'cxcywh')
            l1 = l1.index_add(0, torch.tensor([i], device=l1.device), built['loss_bbox'](
                pred, target, reduction_override='none').sum().reshape(1))
            giou = giou.index_add(0, torch.tensor([i], device=l1.device), built['loss_iou'](
                boxes_px[i, tokens], gt_px, reduction_override='none').sum().reshape(1))
        # zero-valued terms keep the graph connected when nothing matched (DDP)
        losses['loss_bbox'] = self._reduce(l1, num_gts) + boxes.sum() * 0.0
        losses['loss_iou'] = self._reduce(giou, num_gts) + boxes.sum() * 0.0
        if built['loss_obj'] is not None and 'objectness' in outputs:
            obj = outputs['objectness']
            per_image = built['loss_obj'](obj.reshape(-1, 1), obj_target.reshape(-1, 1),
                                          reduction_override='none').reshape(b, -1).sum(1)
            losses['loss_obj'] = self._reduce(per_image, num_gts)
        return losses

    def _reduce(self, per_image: Tensor, num_gts: Sequence[int]) -> Tensor:
        """Per-image loss sums -> the batch loss (see ``normalization``)."""
        if self.normalization == 'per_example':
            denom = per_image.new_tensor([max(g, 1) for g in num_gts])
            return (per_image / denom).mean()
        from mmdet.utils import reduce_mean
        total = reduce_mean(per_image.new_tensor(float(sum(num_gts)))).clamp_min(1.0)
        return per_image.sum() / total


def _mmdet_scoped(cfg: dict) -> dict:
    """``'X'`` -> ``'mmdet.X'`` for every unscoped ``type`` (recursively)."""
    out = copy.deepcopy(dict(cfg))

    def scope(node):
        if isinstance(node, dict):
            kind = node.get('type')
            if isinstance(kind, str) and '.' not in kind:
                node['type'] = f'mmdet.{kind}'
            for v in node.values():
                scope(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                scope(v)

    scope(out)
    return out


__all__ = ['OwlSetCriterion', 'DEFAULT_ASSIGNER', 'DEFAULT_LOSS_CLS', 'DEFAULT_LOSS_BBOX',
           'DEFAULT_LOSS_IOU', 'DEFAULT_LOSS_OBJ', 'NORMALIZATIONS', 'L1_FORMATS',
           'OWL_FOCAL_ALPHA', 'OWL_FOCAL_GAMMA']
