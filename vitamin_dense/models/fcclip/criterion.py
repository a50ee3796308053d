"""Mask2Former's set-prediction loss, built from mmdet's components.

For every decoder step (deep supervision): predictions are matched one to one
to the ground-truth segments by mmdet's ``HungarianAssigner`` with
``ClassificationCost + CrossEntropyLossCost + DiceCost`` evaluated on a shared
set of random points; then

* ``loss_cls``: cross-entropy over ``K + 1`` classes (void last, weight
  ``void_weight``), every query, averaged by the summed class weights;
* ``loss_mask`` / ``loss_dice``: sigmoid cross-entropy and dice on
  ``num_points`` points per matched mask, picked by importance sampling (the
  most uncertain of ``oversample_ratio`` x random points plus random ones),
  averaged over matched masks across all GPUs.

mmdet and mmcv are imported when the criterion is built (training only), so
the model itself imports and predicts without them.

Difference from mmdet's ``Mask2FormerHead.loss_by_feat`` (otherwise equal,
``tests/test_seg_model.py``): an image without any ground-truth segment
counts 0 masks here (Mask2Former / FC-CLIP: the mask losses are averaged
over the true number of masks) and 1 in mmdet (``max(1, #pos)`` per image).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from ...registry import MODELS


def _mmdet_cfg(cfg: dict) -> dict:
    """Accept ``type='mmdet.X'`` or ``type='X'`` for mmdet's registries."""
    cfg = dict(cfg)
    if isinstance(cfg.get('type'), str) and cfg['type'].startswith('mmdet.'):
        cfg['type'] = cfg['type'][len('mmdet.'):]
    if 'match_costs' in cfg:
        cfg['match_costs'] = [_mmdet_cfg(c) for c in cfg['match_costs']]
    return cfg


def _build_mmdet(registry: str, cfg: dict):
    """Build from mmdet's registry with mmdet as the default scope (nested configs,
    such as an assigner's match costs, are then looked up in mmdet too)."""
    import mmdet.registry
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        return getattr(mmdet.registry, registry).build(cfg)


DEFAULT_ASSIGNER = dict(
    type='mmdet.HungarianAssigner',
    match_costs=[
        dict(type='mmdet.ClassificationCost', weight=2.0),
        dict(type='mmdet.CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
        dict(type='mmdet.DiceCost', weight=5.0, pred_act=True, eps=1.0),
    ])


@MODELS.register_module()
class MaskFormerCriterion(nn.Module):
    """Hungarian matching and class / mask / dice losses over decoder steps.

    Args:
        num_points: points per mask for matching and the mask losses (12544 = 112^2).
        oversample_ratio, importance_sample_ratio: importance sampling of the points.
        class_weight, mask_weight, dice_weight: loss weights (Mask2Former: 2, 5, 5).
        void_weight: weight of the void class in the class loss (0.1).
        assigner: mmdet assigner config (with its match costs).
        deep_supervision: also supervise every intermediate decoder step.
    """

    def __init__(self,
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 class_weight: float = 2.0,
                 mask_weight: float = 5.0,
                 dice_weight: float = 5.0,
                 void_weight: float = 0.1,
                 assigner: Optional[dict] = None,
                 deep_supervision: bool = True):
        super().__init__()
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.class_weight = class_weight
        self.void_weight = void_weight
        self.deep_supervision = deep_supervision
        self.assigner = _build_mmdet('TASK_UTILS', _mmdet_cfg(assigner or DEFAULT_ASSIGNER))
        self.loss_mask = _build_mmdet('MODELS', dict(type='CrossEntropyLoss', use_sigmoid=True,
                                                     reduction='mean', loss_weight=mask_weight))
        self.loss_dice = _build_mmdet('MODELS', dict(
            type='DiceLoss', use_sigmoid=True, activate=True, reduction='mean', naive_dice=True,
            eps=1.0, loss_weight=dice_weight))
        self._loss_cls: Dict[int, nn.Module] = {}

    def _class_loss_for(self, num_classes: int) -> nn.Module:
        """mmdet CrossEntropyLoss with per-class weights [1] * K + [void_weight] (cached per K)."""
        if num_classes not in self._loss_cls:
            self._loss_cls[num_classes] = _build_mmdet('MODELS', dict(
                type='CrossEntropyLoss', use_sigmoid=False, reduction='mean',
                loss_weight=self.class_weight,
                class_weight=[1.0] * num_classes + [self.void_weight]))
        return self._loss_cls[num_classes]

    # ----------------------------------------------------------------- matching
    @torch.no_grad()
    def match(self, logits: Tensor, masks: Tensor, gt_labels: Tensor, gt_masks: Tensor) -> Tensor:
        """Matched ground-truth index per query (``-1``: unmatched) for one image."""
        from mmcv.ops import point_sample
        from mmengine.structures import InstanceData
        num_queries = logits.shape[0]
        if gt_labels.numel() == 0:
            return torch.full((num_queries,), -1, dtype=torch.long, device=logits.device)
        points = torch.rand((1, self.num_points, 2), device=logits.device)
        pred_points = point_sample(masks[:, None].float(),
                                   points.expand(num_queries, -1, -1))[:, 0]
        gt_points = point_sample(gt_masks[:, None].float(),
                                 points.expand(gt_masks.shape[0], -1, -1))[:, 0]
        result = self.assigner.assign(
            pred_instances=InstanceData(scores=logits.float(), masks=pred_points),
            gt_instances=InstanceData(labels=gt_labels, masks=gt_points))
        return result.gt_inds - 1

    # -------------------------------------------------------------------- losses
    def step_losses(self, logits: Tensor, masks: Tensor, targets: Sequence) -> Dict[str, Tensor]:
        """Losses of one decoder step: ``logits`` ``(B, Q, K + 1)``, ``masks`` ``(B, Q, h, w)``."""
        from mmcv.ops import point_sample
        from mmdet.models.utils import get_uncertain_point_coords_with_randomness
        from mmdet.utils import reduce_mean
        b, q, k1 = logits.shape
        num_classes = k1 - 1
        labels = logits.new_full((b, q), num_classes, dtype=torch.long)
        pred_masks, gt_masks = [], []
        for i, target in enumerate(targets):
            assigned = self.match(logits[i].detach(), masks[i].detach(), target.labels,
                                  target.masks)
            pos = torch.nonzero(assigned >= 0).flatten()
            labels[i, pos] = target.labels[assigned[pos]]
            pred_masks.append(masks[i, pos])
            gt_masks.append(target.masks[assigned[pos]])
        loss_cls_fn = self._class_loss_for(num_classes)
        weights = logits.new_tensor([1.0] * num_classes + [self.void_weight])
        loss_cls = loss_cls_fn(logits.flatten(0, 1).float(), labels.flatten(),
                               avg_factor=weights[labels.flatten()].sum())
        pred = torch.cat(pred_masks)
        num_masks = reduce_mean(logits.new_tensor([float(pred.shape[0])])).clamp(min=1).item()
        if pred.shape[0] == 0:
            zero = masks.sum() * 0
            return dict(loss_cls=loss_cls, loss_mask=zero, loss_dice=zero)
        gt = torch.cat(gt_masks)
        with torch.no_grad():
            points = get_uncertain_point_coords_with_randomness(
                pred[:, None].float(), None, self.num_points, self.oversample_ratio,
                self.importance_sample_ratio)
            gt_points = point_sample(gt[:, None].float(), points)[:, 0]
        pred_points = point_sample(pred[:, None].float(), points)[:, 0]
        loss_dice = self.loss_dice(pred_points, gt_points, avg_factor=num_masks)
        loss_mask = self.loss_mask(pred_points.reshape(-1), gt_points.reshape(-1),
                                   avg_factor=num_masks * self.num_points)
        return dict(loss_cls=loss_cls, loss_mask=loss_mask, loss_dice=loss_dice)

    def forward(self, pred_logits: List[Tensor], pred_masks: List[Tensor],
                targets: Sequence) -> Dict[str, Tensor]:
        """Losses of the last step (``loss_*``) and, with deep supervision, of
        each earlier step ``i`` (``d{i}.loss_*``, mmdet's naming).

        ``targets``: per image, an object with ``labels`` ``(n,)`` (in
        ``[0, K)``) and boolean ``masks`` ``(n, H, W)`` (any resolution:
        points are sampled in normalised coordinates).
        """
        if len(pred_logits) != len(pred_masks):
            raise ValueError(f'{len(pred_logits)} class predictions for {len(pred_masks)} '
                             'mask predictions: classify every decoder step for training')
        losses = {}
        last = len(pred_logits) - 1
        steps = range(len(pred_logits)) if self.deep_supervision else [last]
        for i in steps:
            step = self.step_losses(pred_logits[i], pred_masks[i], targets)
            prefix = '' if i == last else f'd{i}.'
            losses.update({prefix + k: v for k, v in step.items()})
        return losses


__all__ = ['MaskFormerCriterion', 'DEFAULT_ASSIGNER']
