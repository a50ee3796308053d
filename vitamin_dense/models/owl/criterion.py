"""Set-prediction training of the OWL head: Hungarian matching and DETR losses.

Every token is one prediction. Each image's tokens are matched one-to-one to
its ground-truth boxes with mmdet's ``HungarianAssigner`` (focal
classification, L1 and GIoU costs); matched tokens learn their box (L1 on
normalised ``cx, cy, w, h`` and GIoU on pixels) and their class, and every
other token learns "no object" for every query (sigmoid focal loss over the
token x query logits). The OWLv2 objectness head learns "matched to any box"
with the same focal loss on its detached features.

mmdet is imported only when the criterion is first used, so the detector's
inference path never needs mmcv or mmdet. The focal loss is given one-hot
targets, which makes mmdet's ``FocalLoss`` take its pure-PyTorch branch on
every device (mmcv's ``SigmoidFocalLoss`` has no CPU kernel) and lets padded
queries be excluded with a weight.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .heads import boxes_to_pixels


DEFAULT_ASSIGNER = dict(
    type='mmdet.HungarianAssigner',
    match_costs=[
        dict(type='mmdet.FocalLossCost', weight=2.0),
        dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0),
    ])
DEFAULT_LOSS_CLS = dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                        loss_weight=2.0)
DEFAULT_LOSS_BBOX = dict(type='mmdet.L1Loss', loss_weight=5.0)
DEFAULT_LOSS_IOU = dict(type='mmdet.GIoULoss', loss_weight=2.0)
DEFAULT_LOSS_OBJ = dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                        loss_weight=1.0)


class OwlSetCriterion:
    """Matching and losses for :class:`~vitamin_dense.models.OwlDetector`.

    Args:
        assigner: config of the assigner (mmdet's ``HungarianAssigner`` with
            ``FocalLossCost``, ``BBoxL1Cost`` (xywh) and ``IoUCost`` (giou)).
        loss_cls / loss_bbox / loss_iou / loss_obj: mmdet loss configs;
            ``loss_obj=None`` skips the objectness loss.
    """

    def __init__(self, assigner: Optional[dict] = None, loss_cls: Optional[dict] = None,
                 loss_bbox: Optional[dict] = None, loss_iou: Optional[dict] = None,
                 loss_obj: Optional[dict] = 'default'):
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
        """Match one image's tokens to its boxes: ``(token indices, gt indices)``."""
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
                normalised on the grid, ``objectness (B, N)``, ``grid_hw``).
            gt_boxes: per image ``(G_i, 4)`` xyxy boxes in input (canvas) pixels.
            gt_labels: per image ``(G_i,)`` query indices.
            query_mask: ``(B, Q)`` or ``(Q,)`` real queries (None: all).
        """
        from mmdet.utils import reduce_mean
        from torchvision.ops import box_convert
        built = self._build()
        logits, boxes = outputs['logits'], outputs['boxes']
        grid_hw = outputs['grid_hw']
        b, n, q = logits.shape
        frame_hw = (grid_hw[0] * 16, grid_hw[1] * 16)
        boxes_px = boxes_to_pixels(boxes, grid_hw)
        frame = boxes.new_tensor([frame_hw[1], frame_hw[0]] * 2)

        cls_target = torch.zeros_like(logits)
        obj_target = logits.new_zeros(b, n)
        matched_pred: List[Tensor] = []
        matched_pred_px: List[Tensor] = []
        matched_gt_px: List[Tensor] = []
        for i in range(b):
            labels = gt_labels[i].to(logits.device).long()
            gts = gt_boxes[i].to(boxes_px)
            tokens, gt_idx = self.assign(logits[i], boxes_px[i], gts, labels, frame_hw)
            if tokens.numel() == 0:
                continue
            cls_target[i, tokens, labels[gt_idx]] = 1.0
            obj_target[i, tokens] = 1.0
            matched_pred.append(boxes[i, tokens])
            matched_pred_px.append(boxes_px[i, tokens])
            matched_gt_px.append(gts[gt_idx])

        num_gts = sum(int(g.shape[0]) for g in gt_boxes)
        avg = reduce_mean(logits.new_tensor(float(num_gts))).clamp_min(1.0).item()
        weight = None
        if query_mask is not None:
            mask = query_mask.to(logits.dtype)
            weight = (mask[None, :] if mask.dim() == 1 else mask[:, None, :]).expand_as(logits)
            weight = weight.reshape(-1, q)
            logits = logits.masked_fill(weight.reshape(b, n, q) == 0, 0.0)  # finite for the loss
        losses = {'loss_cls': built['loss_cls'](logits.reshape(-1, q), cls_target.reshape(-1, q),
                                                weight=weight, avg_factor=avg)}
        if matched_pred:
            pred = torch.cat(matched_pred)
            pred_px = torch.cat(matched_pred_px)
            gt_px = torch.cat(matched_gt_px)
            gt_norm = box_convert(gt_px / frame, 'xyxy', 'cxcywh')
            losses['loss_bbox'] = built['loss_bbox'](pred, gt_norm, avg_factor=avg)
            losses['loss_iou'] = built['loss_iou'](pred_px, gt_px, avg_factor=avg)
        else:  # keep the graph connected (DDP) with zero-valued losses
            losses['loss_bbox'] = boxes.sum() * 0.0
            losses['loss_iou'] = boxes.sum() * 0.0
        if built['loss_obj'] is not None and 'objectness' in outputs:
            obj = outputs['objectness']
            losses['loss_obj'] = built['loss_obj'](obj.reshape(-1, 1), obj_target.reshape(-1, 1),
                                                   avg_factor=avg)
        return losses


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
           'DEFAULT_LOSS_IOU', 'DEFAULT_LOSS_OBJ']
