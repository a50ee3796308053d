"""Heads on the stitched token map: window borders neither lose nor duplicate boxes.

The detector runs its heads once per token of the stitched map of the whole
image (not once per window), so (1) tokens on either side of a window border
get exactly the features their own windows computed, (2) every token predicts
one box, whatever the window layout or overlap, and the cells tile the image
once, and (3) a box may extend across window borders.
"""
import pytest
import torch

from tests.helpers.det import build_tiny_detector, zero_box_mlp
from vitamin_dense.models.owl import boxes_to_pixels


@pytest.fixture(scope='module')
def detector():
    return build_tiny_detector(head=dict(context='window')).eval()


def test_stitched_features_equal_per_window_features_at_borders(detector):
    """With stride = window, each token's features are its own window's, border tokens too."""
    torch.manual_seed(0)
    image = torch.randn(1, 3, 128, 192)  # 2 x 3 windows of 64 px
    with torch.no_grad():
        stitched = detector.extract_features(image)  # 'window' context: per-window CLS stand-in
        detector.head.context = 'image'  # a lone window's whole-image context = its window's
        try:
            for y in (0, 64):
                for x in (0, 64, 128):
                    alone = detector.extract_features(image[..., y:y + 64, x:x + 64])
                    block = stitched[:, y // 16:y // 16 + 4, x // 16:x // 16 + 4]
                    torch.testing.assert_close(block, alone, rtol=1e-4, atol=1e-5)
        finally:
            detector.head.context = 'window'


@pytest.mark.parametrize('size,stride', [((100, 150), 32), ((64, 64), 64), ((70, 200), 48)])
def test_one_box_per_token_and_cells_tile_the_image_once(size, stride):
    det = build_tiny_detector(test_stride=stride).eval()
    zero_box_mlp(det)
    h, w = size
    with torch.no_grad():
        out = det.head(det.extract_features(torch.randn(1, 3, h, w)),
                       det.encode_vocabulary(det.vocabulary))
    gh, gw = out['grid_hw']
    assert (gh, gw) == (-(-h // 16), -(-w // 16))
    assert out['boxes'].shape == (1, gh * gw, 4) and out['logits'].shape == (1, gh * gw, 3)
    cells = boxes_to_pixels(out['boxes'][0], out['frames'][0]).round().long()
    cover = torch.zeros(gh * 16, gw * 16, dtype=torch.long)
    for x1, y1, x2, y2 in cells.tolist():
        cover[y1:y2, x1:x2] += 1
    assert (cover == 1).all()  # no gap at a window border, no cell counted twice

    # detect(): every (token, class) pair survives without NMS / threshold, once
    results = det.detect(torch.randn(1, 3, h, w), test_cfg=dict(
        score_thr=-1.0, nms_iou=None, max_per_img=10 ** 6, nms_pre=10 ** 6))
    assert len(results[0]) == gh * gw * 3
    unique = torch.unique(results[0].bboxes.round(decimals=2), dim=0)
    assert len(unique) == gh * gw  # one box per token (clipped to the image)
    assert results[0].bboxes[:, 2].max() <= w and results[0].bboxes[:, 3].max() <= h


def test_box_of_a_border_token_extends_into_the_next_window():
    det = build_tiny_detector().eval()
    zero_box_mlp(det)
    with torch.no_grad():  # boxes 4 tokens wide: logit(4 / F) - logit(1 / F) in a 12-token frame
        det.head.box_head.dense2.bias[2] = float(torch.logit(torch.tensor(4 / 12)) -
                                                 torch.logit(torch.tensor(1 / 12)))
        out = det.head(det.extract_features(torch.randn(1, 3, 64, 192)))
    assert out['frames'].tolist() == [12]  # the square of the longer side
    boxes = boxes_to_pixels(out['boxes'][0], out['frames'][0]).reshape(4, 12, 4)
    last_of_first_window = boxes[:, 3]  # token column 3 ends at x = 64, the window border
    # centred on its cell (x = 56), 64 px wide: [24, 88], across the border at x = 64
    torch.testing.assert_close(last_of_first_window[:, 0], torch.full((4,), 24.0), atol=0.05, rtol=0)
    torch.testing.assert_close(last_of_first_window[:, 2], torch.full((4,), 88.0), atol=0.05, rtol=0)
