"""Training losses: matching, gradients, frozen / fine-tuned backbone, queries."""
import numpy as np
import pytest
import torch

from tests.helpers.det import build_tiny_detector


def _mmdet_batch(detector, boxes_per_image, labels_per_image, sizes=((128, 128), (96, 128))):
    """A batch through mmdet's real packing and data preprocessor (HorizontalBoxes, padding)."""
    from mmdet.datasets.transforms import PackDetInputs
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    rng = np.random.default_rng(0)
    samples = []
    for (h, w), boxes, labels in zip(sizes, boxes_per_image, labels_per_image):
        results = dict(img=rng.integers(0, 255, (h, w, 3), dtype=np.uint8), img_shape=(h, w),
                       ori_shape=(h, w), img_id=0, img_path='', scale_factor=(1.0, 1.0),
                       gt_bboxes=np.array(boxes, np.float32).reshape(-1, 4),
                       gt_bboxes_labels=np.array(labels, np.int64),
                       gt_ignore_flags=np.zeros(len(labels), bool))
        from mmdet.structures.bbox import HorizontalBoxes
        results['gt_bboxes'] = HorizontalBoxes(results['gt_bboxes'])
        samples.append(PackDetInputs()(results))
    pre = DetDataPreprocessor(mean=list(detector.backbone.pixel_mean),
                              std=list(detector.backbone.pixel_std), bgr_to_rgb=True,
                              pad_size_divisor=16)
    return pre(dict(inputs=[s['inputs'] for s in samples],
                    data_samples=[s['data_samples'] for s in samples]), True)


BOXES = ([[10, 10, 60, 50], [70, 64, 120, 120]], [[0, 0, 40, 30]])
LABELS = ([0, 2], [1])


def test_losses_and_gradients_with_frozen_backbone():
    det = build_tiny_detector().train()
    batch = _mmdet_batch(det, BOXES, LABELS)
    losses = det(batch['inputs'], batch['data_samples'], mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_iou', 'loss_obj'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name, p in det.head.named_parameters():
        assert p.grad is not None, name
        # the last layers of the box and objectness MLPs start at zero (scenic's init: boxes
        # = token cells), so on the very first step only they get a gradient
        if not name.startswith(('box_head.dense0', 'box_head.dense1',
                                'objectness_head.dense0', 'objectness_head.dense1')):
            assert p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in det.backbone.parameters())
    assert all(p.grad is None for p in det.text_encoder.parameters())


def test_fine_tuned_backbone_gets_gradients():
    det = build_tiny_detector(frozen=False).train()
    batch = _mmdet_batch(det, BOXES, LABELS)
    losses = det(batch['inputs'], batch['data_samples'], mode='loss')
    sum(losses.values()).backward()
    block = det.backbone.trunk.blocks[0].attn.qkv.weight
    assert block.grad is not None and block.grad.abs().sum() > 0


def test_objectness_loss_does_not_shape_the_features():
    det = build_tiny_detector(frozen=False).train()
    batch = _mmdet_batch(det, BOXES, LABELS)
    det(batch['inputs'], batch['data_samples'], mode='loss')['loss_obj'].backward()
    assert det.head.objectness_head.dense2.weight.grad.abs().sum() > 0
    others = list(det.backbone.parameters()) + list(det.head.layer_norm.parameters()) + \
        list(det.head.class_head.parameters()) + list(det.head.box_head.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in others)


def test_image_without_boxes_and_matching_count():
    det = build_tiny_detector().train()
    batch = _mmdet_batch(det, ([], [[0, 0, 40, 30]]), ([], [1]))
    losses = det(batch['inputs'], batch['data_samples'], mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    # one-to-one matching: exactly as many positive tokens as boxes
    feats = det.extract_features(batch['inputs'])
    out = det.head(feats, det.training_queries()[0])
    from vitamin_dense.models.owl import boxes_to_pixels
    px = boxes_to_pixels(out['boxes'], out['frames'])
    gt = torch.tensor([[0., 0, 40, 30], [50, 50, 90, 90]])
    side = int(out['frames'][1]) * 16
    tokens, gt_idx = det.criterion.assign(out['logits'][1], px[1], gt, torch.tensor([1, 0]),
                                          (side, side))
    assert len(tokens) == 2 and sorted(gt_idx.tolist()) == [0, 1]


def test_base_classes_only_and_pseudo_negatives(monkeypatch):
    det = build_tiny_detector(vocabulary='circle,square,triangle,star', train_classes=['circle',
                              'square', 'triangle'], negative_vocabulary='star,hexagon,ring,cross,'
                              'oval,Circle Shape', num_negatives=2).train()
    asked = []
    real_encode = det.text_encoder.encode
    monkeypatch.setattr(det.text_encoder, 'encode',
                        lambda vocab: asked.append(list(vocab.names)) or real_encode(vocab))
    queries, k = det.training_queries()
    assert k == 3 and queries.shape[0] == 5
    names = {n for call in asked for n in call}
    assert 'star' not in names  # the held-out (novel) class never becomes a query
    assert {'circle', 'square', 'triangle'} <= names
    assert names - {'circle', 'square', 'triangle'} <= {'hexagon', 'ring', 'cross', 'oval',
                                                        'Circle Shape'}
    picks = set()
    for _ in range(20):
        queries, _ = det.training_queries()
        picks.add(tuple(queries[3:].sum(1).round(decimals=4).tolist()))
    assert len(picks) > 1  # negatives are re-sampled every step
    # boxes of the held-out class are dropped from the targets
    targets = []
    real_criterion = det.criterion

    def spy(outputs, gt_boxes, gt_labels, *args, **kwargs):
        targets.append(([b.tolist() for b in gt_boxes], [lab.tolist() for lab in gt_labels]))
        return real_criterion(outputs, gt_boxes, gt_labels, *args, **kwargs)

    monkeypatch.setattr(det, 'criterion', spy)
    batch = _mmdet_batch(det, ([[10, 10, 60, 50], [70, 64, 120, 120]], [[0, 0, 40, 30]]),
                         ([0, 3], [3]))
    losses = det(batch['inputs'], batch['data_samples'], mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    boxes, labels = targets[-1]
    assert labels == [[0], []] and len(boxes[0]) == 1 and boxes[1] == []


def test_bad_training_settings():
    from vitamin_dense.errors import ConfigError
    det = build_tiny_detector(train_classes=['dog'])
    with pytest.raises(ConfigError, match="'dog'"):
        det.training_queries()
    det = build_tiny_detector(negative_vocabulary='circle,square', num_negatives=2)
    with pytest.raises(ConfigError, match='negative_vocabulary'):
        det.training_queries()
    with pytest.raises(ConfigError, match='train_cfg'):
        build_tiny_detector(train_cfg=dict(sampler=None))


def test_query_mask_limits_the_class_loss():
    """Masked (image, query) pairs get no classification gradient (the federated loss)."""
    from vitamin_dense.models import OwlSetCriterion
    mask = torch.tensor([[1, 1, 1, 1, 1],
                         [1, 0, 0, 1, 1],
                         [1, 1, 1, 1, 1]], dtype=torch.bool)
    gt = [torch.tensor([1]), torch.tensor([0]), torch.tensor([2])]
    logits = torch.randn(3, 6, 5, requires_grad=True)
    boxes = torch.rand(3, 6, 2).repeat(1, 1, 2) * torch.tensor([0.5, 0.5, 0.3, 0.3]) + 0.2
    out = {'logits': logits, 'boxes': boxes, 'grid_hw': (2, 3)}
    gt_boxes = [torch.tensor([[0., 0., 20., 20.]])] * 3
    losses = OwlSetCriterion()(out, gt_boxes, gt, query_mask=mask)
    losses['loss_cls'].backward()
    assert (logits.grad[1][:, 1:3] == 0).all() and (logits.grad[1][:, 0] != 0).any()
    assert (logits.grad[0] != 0).all()
