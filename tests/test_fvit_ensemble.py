"""F-ViT's test-time score: geometric ensemble, CLIP RoI pooling, box-head composition."""
import math

import pytest
import torch
import torch.nn.functional as F

import vitamin_dense  # noqa: F401
from vitamin_dense.errors import ConfigError
from vitamin_dense.models.fvit import check_exponent, cosine_logits, geometric_ensemble


def test_geometric_ensemble_matches_hand_computed_values():
    det = torch.tensor([[0.5, 0.3, 0.2]])
    clip = torch.tensor([[0.2, 0.2, 0.6]])
    novel = torch.tensor([False, True, False])  # last column: background, a base column
    # 0.5^0.9 * 0.2^0.1, 0.3^0.2 * 0.2^0.8, 0.2^0.9 * 0.6^0.1 (worked out by hand / calculator)
    out = geometric_ensemble(det, clip, novel, alpha=0.1, beta=0.8)
    assert out[0].tolist() == pytest.approx([0.45622177, 0.21689435, 0.22322463], abs=1e-7)
    # OV-LVIS exponents: only the novel column changes (0.3^0.6 * 0.2^0.4).
    out = geometric_ensemble(det, clip, novel, alpha=0.1, beta=0.4)
    assert out[0].tolist() == pytest.approx([0.45622177, 0.2550849, 0.22322463], abs=1e-7)
    # No renormalisation: the published ensemble gives scores, not a distribution.
    assert float(out.sum()) != pytest.approx(1.0, abs=1e-3)


def test_ensemble_limits_and_errors():
    det = torch.softmax(torch.randn(5, 4), -1)
    clip = torch.softmax(torch.randn(5, 4), -1)
    novel = torch.tensor([True, False, True, False])
    assert torch.allclose(geometric_ensemble(det, clip, novel, 0.0, 0.0), det)
    assert torch.allclose(geometric_ensemble(det, clip, novel, 1.0, 1.0), clip)
    with pytest.raises(ValueError, match='differ in shape'):
        geometric_ensemble(det, clip[:, :3], novel, 0.1, 0.8)
    with pytest.raises(ValueError, match='novel_mask'):
        geometric_ensemble(det, clip, novel[:3], 0.1, 0.8)
    with pytest.raises(ConfigError, match=r'in \[0, 1\]'):
        check_exponent('beta', 1.5)


def test_cosine_logits():
    a = torch.tensor([[3.0, 4.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert cosine_logits(a, b, 50.0)[0].tolist() == pytest.approx([30.0, 40.0])


def _head(**kwargs):
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS
    cfg = dict(type='FViTBBoxHead', embed_dim=8, in_channels=4, roi_feat_size=7,
               conv_out_channels=4, fc_out_channels=8, temperature=50.0,
               clip_temperature=75.0, alpha=0.1, beta=0.8, background_weight=0.6)
    cfg.update(kwargs)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg)


def test_box_head_scores_by_hand():
    head = _head()
    head.init_weights()
    torch.manual_seed(1)
    classes = torch.randn(3, 8)
    head.set_class_embeddings(classes, novel_mask=torch.tensor([False, True, False]))
    head.background_embedding.copy_(torch.randn(8))
    assert head.num_classes == 3
    assert head.loss_cls.class_weight == [1.0, 1.0, 1.0, 0.6]
    rois = torch.randn(6, 4, 7, 7)
    clip_emb = F.normalize(torch.randn(6, 8), dim=-1)

    head.train()
    logits, deltas = head(rois)
    assert logits.shape == (6, 4) and deltas.shape == (6, 4)  # class-agnostic regression

    head.eval()
    probs, _ = head(rois, clip_emb)
    # By hand: embed (relu(cls_fc(.)), as published), cosine to [classes; background] x 50
    # -> softmax; CLIP: cosine x 75.
    projected, _ = super(type(head), head).forward(rois)
    assert (projected >= 0).all()
    text = torch.cat([F.normalize(classes, dim=-1),
                      F.normalize(head.background_embedding, dim=-1)[None]])
    det = torch.softmax(50.0 * F.normalize(projected, dim=-1) @ text.t(), -1)
    clip = torch.softmax(75.0 * clip_emb @ text.t(), -1)
    expo = torch.tensor([0.1, 0.8, 0.1, 0.1])
    expected = det ** (1 - expo) * clip ** expo
    assert torch.allclose(probs, expected, atol=1e-6)
    # Without CLIP embeddings: the detector's own probabilities.
    only_det, _ = head(rois)
    assert torch.allclose(only_det, det, atol=1e-6)


def test_box_head_without_class_fc_projects_linearly():
    """num_cls_fcs=0: a linear projection of the shared features (no ReLU) is the embedding."""
    head = _head(num_cls_fcs=0, num_reg_fcs=0, fc_out_channels=16)
    assert isinstance(head.fc_cls, torch.nn.Linear) and head.fc_cls.in_features == 16
    assert head.fc_cls.out_features == 8 and len(head.cls_fcs) == len(head.reg_fcs) == 0
    head.init_weights()
    projected, deltas = super(type(head), head).forward(torch.randn(6, 4, 7, 7))
    assert projected.shape == (6, 8) and (projected < 0).any() and deltas.shape == (6, 4)


def test_box_head_config_errors():
    with pytest.raises(ConfigError, match='reg_class_agnostic'):
        _head(reg_class_agnostic=False)
    with pytest.raises(ConfigError, match='use_sigmoid'):
        _head(loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True))
    with pytest.raises(ConfigError, match='fc_out_channels'):
        _head(fc_out_channels=16)
    head = _head()
    with pytest.raises(ConfigError, match='no vocabulary'):
        head.eval()(torch.randn(2, 4, 7, 7))
    with pytest.raises(ConfigError, match='embed_dim 8'):
        head.set_class_embeddings(torch.randn(3, 5))


def test_clip_roi_pooling_matches_torchvision_roi_align():
    """RoIAlign(1x1) of the per-token normalised CLIP map = torchvision's roi_align, normalised."""
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS
    from torchvision.ops import roi_align
    with DefaultScope.overwrite_default_scope('mmdet'):
        roi_head = MODELS.build(dict(
            type='FViTRoIHead',
            bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                    roi_layer=dict(type='RoIAlign', output_size=7,
                                                   sampling_ratio=0),
                                    out_channels=4, featmap_strides=[4]),
            bbox_head=dict(type='FViTBBoxHead', embed_dim=8, in_channels=4,
                           conv_out_channels=4, fc_out_channels=8),
            clip_roi_extractor=dict(type='SingleRoIExtractor',
                                    roi_layer=dict(type='RoIAlign', output_size=1,
                                                   sampling_ratio=0),
                                    out_channels=8, featmap_strides=[16])))
    clip_map = torch.randn(2, 8, 6, 9)
    rois = torch.tensor([[0, 5.0, 7.0, 100.0, 80.0], [1, 16.0, 16.0, 48.0, 32.0],
                         [1, 0.0, 0.0, 144.0, 96.0]])
    ours = roi_head.clip_roi_embeddings(clip_map, rois)
    ref = roi_align(F.normalize(clip_map, dim=1), rois, output_size=1, spatial_scale=1 / 16,
                    sampling_ratio=0, aligned=True).flatten(1)
    assert torch.allclose(ours, F.normalize(ref, dim=-1), atol=1e-5)
    assert math.isclose(float(ours.norm(dim=-1).mean()), 1.0, rel_tol=1e-5)
