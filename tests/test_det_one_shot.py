"""Image-conditioned (one-shot) queries: the exemplar rule and the end-to-end path."""
import pytest
import torch

from tests.helpers.det import build_tiny_detector
from vitamin_dense.errors import ConfigError
from vitamin_dense.models.owl import select_query_embedding


def test_rule_keeps_well_overlapping_boxes_and_takes_the_least_mean_like():
    query = torch.tensor([10., 10., 50., 50.])
    boxes = torch.tensor([
        [10., 10., 50., 50.],   # IoU 1.0 (best)
        [10., 10., 50., 46.],   # IoU 0.9: kept (>= 0.8 x best)
        [10., 10., 50., 30.],   # IoU 0.5: dropped
        [100., 100., 120., 120.],  # no overlap
    ])
    # the image mean is dominated by e0; token 1 is the most different kept token,
    # token 2 would be even more different but overlaps too little
    embeds = torch.tensor([[1.0, 0.1, 0.0], [0.2, 1.0, 0.0], [-1.0, 0.0, 1.0], [3.0, 0.0, 0.0]])
    sel = select_query_embedding(embeds, boxes, query)
    assert sel.index == 1
    torch.testing.assert_close(sel.embedding, embeds[1])
    assert sel.iou == pytest.approx(0.9)
    # a stricter ratio keeps only the best box
    assert select_query_embedding(embeds, boxes, query, iou_ratio=0.95).index == 0


def test_rule_falls_back_to_giou_when_nothing_overlaps():
    query = torch.tensor([0., 0., 10., 10.])
    boxes = torch.tensor([[12., 0., 22., 10.], [40., 40., 50., 50.], [11., 0., 21., 10.]])
    embeds = torch.randn(3, 4)
    sel = select_query_embedding(embeds, boxes, query)
    assert sel.index in (0, 2)  # the near ones, never the far one
    assert sel.iou < 0
    # scenic keeps GIoU >= 1.2 x the best (negative) GIoU: best -1/21, so -1.23/21.23 is
    # out (a 1 / 0.8 rule would keep it, and take it: the least like the mean)
    boxes = torch.tensor([[11., 0., 21., 10.], [0., 11.23, 10., 21.23], [40., 40., 50., 50.]])
    embeds = torch.tensor([[1.0, 0.0], [0.0, -1.0], [0.0, 2.0]])
    giou = torch.tensor([-1 / 21, -1.23 / 21.23])
    assert 1.2 * giou[0] > giou[1] > 1.25 * giou[0]
    assert select_query_embedding(embeds, boxes, query).index == 0
    with pytest.raises(ConfigError, match='iou_ratio'):
        select_query_embedding(embeds, boxes, query, iou_ratio=0)


def test_one_shot_detection_finds_the_exemplar_in_original_coordinates():
    det = build_tiny_detector().eval()
    with torch.no_grad():  # logits = plain cosine: the exemplar's own token scores highest
        for lin in (det.head.class_head.logit_shift, det.head.class_head.logit_scale):
            lin.weight.zero_()
            lin.bias.zero_()
        # OWL starts the class projection at ~1e-6, where the 1e-6 of the normalisation
        # still shows: a trained-size projection makes the self-cosine exactly 1
        det.head.class_head.dense0.weight.normal_(0, 0.05)
    torch.manual_seed(1)
    image = torch.randn(1, 3, 96, 160)  # input = original x 0.5 (original 192 x 320)
    exemplar = torch.tensor([[60., 30., 110., 80.]])  # input pixels, across the x = 64 border
    queries, chosen = det.embed_image_queries(image, exemplar)
    assert queries.shape == (1, det.text_encoder.embed_dim)
    assert chosen[0].iou > 0
    meta = dict(img_shape=(96, 160), scale_factor=(0.5, 0.5), ori_shape=(192, 320))
    result = det.detect(image, [meta], queries=queries,
                        test_cfg=dict(score_thr=0.0, nms_iou=None))[0]
    assert result.scores[0] == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item(), abs=1e-5)
    torch.testing.assert_close(result.bboxes[0], (chosen[0].box / 0.5).clamp(min=0),
                               rtol=1e-5, atol=1e-3)
    assert result.labels[0] == 0


def test_padded_queries_never_fire():
    det = build_tiny_detector().eval()
    image = torch.randn(2, 3, 64, 64)
    queries = torch.randn(2, 4, det.text_encoder.embed_dim)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    results = det.detect(image, queries=queries, query_mask=mask,
                         test_cfg=dict(score_thr=-1.0, nms_iou=None, max_per_img=10 ** 4))
    assert set(results[0].labels.tolist()) == {0, 1}
    assert set(results[1].labels.tolist()) == {0, 1, 2, 3}
    # one (Q,) mask shared by every image, with per-image (B, Q, E) queries
    shared = det.detect(image, queries=queries, query_mask=torch.tensor([True, False, True, False]),
                        test_cfg=dict(score_thr=-1.0, nms_iou=None, max_per_img=10 ** 4))
    assert [set(r.labels.tolist()) for r in shared] == [{0, 2}, {0, 2}]
