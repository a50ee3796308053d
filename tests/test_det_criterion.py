"""The OWL criterion is OWL-ViT's: weights 1 / 1 / 1, focal alpha 0.3 / gamma 2, L1 on the
box corners, per-example normalisation (scenic ``matching_base_models.py``), checked
against the formulas written out here."""
import copy
import os

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, generalized_box_iou

from vitamin_dense.engine.config import load_config
from vitamin_dense.models.owl import OwlSetCriterion, boxes_to_pixels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _focal(logits, target, alpha=0.3, gamma=2.0):
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return a_t * (1 - p_t) ** gamma * ce


def _example():
    torch.manual_seed(0)
    b, n, q = 2, 9, 3
    logits = torch.randn(b, n, q)
    boxes = torch.rand(b, n, 2).repeat(1, 1, 2) * torch.tensor([0.6, 0.6, 0.3, 0.3]) + 0.2
    out = {'logits': logits, 'boxes': boxes, 'frames': torch.tensor([4, 5]), 'grid_hw': (3, 3),
           'objectness': torch.randn(b, n)}
    gt_boxes = [torch.tensor([[4., 6., 30., 40.], [20., 10., 60., 50.]]),
                torch.tensor([[10., 12., 44., 70.]])]
    gt_labels = [torch.tensor([0, 2]), torch.tensor([1])]
    return out, gt_boxes, gt_labels


def _reference(crit, out, gt_boxes, gt_labels, normalization):
    """scenic's per-example (or global) sums, given the matching of the real matcher."""
    logits, boxes, frames = out['logits'], out['boxes'], out['frames']
    px = boxes_to_pixels(boxes, frames)
    per = {k: [] for k in ('cls', 'l1', 'giou', 'obj')}
    for i in range(len(gt_boxes)):
        side = int(frames[i]) * 16
        tok, gi = crit.assign(logits[i], px[i], gt_boxes[i], gt_labels[i], (side, side))
        target = torch.zeros_like(logits[i])
        target[tok, gt_labels[i][gi]] = 1
        obj = torch.zeros(logits.shape[1])
        obj[tok] = 1
        per['cls'].append(_focal(logits[i], target).sum())
        per['obj'].append(_focal(out['objectness'][i], obj).sum())
        pred_xyxy = box_convert(boxes[i, tok], 'cxcywh', 'xyxy')
        per['l1'].append((pred_xyxy - gt_boxes[i][gi] / side).abs().sum())
        per['giou'].append((1 - generalized_box_iou(px[i, tok], gt_boxes[i][gi]).diag()).sum())
    counts = torch.tensor([float(len(g)) for g in gt_boxes])
    if normalization == 'per_example':
        return {k: (torch.stack(v) / counts.clamp_min(1)).mean() for k, v in per.items()}
    return {k: torch.stack(v).sum() / counts.sum() for k, v in per.items()}


@pytest.mark.parametrize('normalization', ['per_example', 'global'])
def test_losses_match_owls_formulas(normalization):
    crit = OwlSetCriterion(normalization=normalization)
    out, gt_boxes, gt_labels = _example()
    losses = crit(out, gt_boxes, gt_labels)
    ref = _reference(crit, out, gt_boxes, gt_labels, normalization)
    for ours, theirs in (('loss_cls', 'cls'), ('loss_bbox', 'l1'), ('loss_iou', 'giou'),
                         ('loss_obj', 'obj')):
        torch.testing.assert_close(losses[ours], ref[theirs], rtol=1e-5, atol=1e-6)
    # per-example and global differ when images have different box counts
    other = OwlSetCriterion(normalization='global' if normalization == 'per_example'
                            else 'per_example')(out, gt_boxes, gt_labels)
    assert not torch.isclose(other['loss_cls'], losses['loss_cls'])


def test_defaults_and_recipes_are_owls():
    crit = OwlSetCriterion()
    assert (crit.normalization, crit.l1_format) == ('per_example', 'xyxy')
    cfg = load_config(os.path.join(ROOT, 'configs', 'ov_det', 'owl_vitamin_l_ovcoco.py'))
    model = copy.deepcopy(cfg.model.to_dict())
    for source in (crit.cfgs, dict(assigner=model['train_cfg']['assigner'], **{
            k: model[k] for k in ('loss_cls', 'loss_bbox', 'loss_iou', 'loss_obj')})):
        costs = {c['type'].split('.')[-1]: c for c in source['assigner']['match_costs']}
        assert costs['FocalLossCost']['weight'] == 1.0
        assert (costs['FocalLossCost']['alpha'], costs['FocalLossCost']['gamma']) == (0.3, 2.0)
        assert costs['BBoxL1Cost']['weight'] == 1.0 and costs['IoUCost']['weight'] == 1.0
        assert costs['BBoxL1Cost']['box_format'] == 'xywh'  # the matching cost on cxcywh
        for name in ('loss_cls', 'loss_bbox', 'loss_iou'):
            assert source[name]['loss_weight'] == 1.0
        assert (source['loss_cls']['alpha'], source['loss_cls']['gamma']) == (0.3, 2.0)
    assert model['train_cfg']['normalization'] == 'per_example'
    assert model['train_cfg']['l1_format'] == 'xyxy'
    assert model['head']['prior_prob'] == 0.01 and model['head']['init'] == 'owl'
    with pytest.raises(Exception, match='normalization'):
        OwlSetCriterion(normalization='batch')


def test_head_starts_as_scenics():
    """scenic's init: zero last layers of the box and objectness MLPs (boxes = token cells),
    the class projection ~N(0, 1e-6), the logit shift bias at logit(prior_prob)."""
    import math
    from vitamin_dense.models.owl import OwlDetectionHead
    torch.manual_seed(0)
    head = OwlDetectionHead(256, 64, prior_prob=0.01)
    for layer in (head.box_head.dense2, head.objectness_head.dense2):
        assert not layer.weight.any() and not layer.bias.any()
    assert head.class_head.dense0.weight.std().item() == pytest.approx(1e-6, rel=0.05)
    assert head.class_head.logit_shift.bias.item() == pytest.approx(math.log(0.01 / 0.99))
    # LeCun-normal hidden layers: variance 1 / fan_in
    assert head.box_head.dense0.weight.var().item() == pytest.approx(1 / 256, rel=0.05)
    assert not head.box_head.dense0.bias.any() and not head.class_head.logit_scale.bias.any()
