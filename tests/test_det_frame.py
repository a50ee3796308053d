"""One box frame and one window layout: a trained box head means the same in the loss and
in ``predict``, whatever padding a batch adds, and the heads see the same tokens.

OWL pads every image to a square (scenic ``resize_with_pad``, Hugging Face
``Owlv2ImageProcessor.pad``) in training and at evaluation. Ours: boxes live in
a square frame of ``frame_size`` px (or the image's longer side) and the
backbone runs on that square canvas in both paths. The box MLP here is *not*
zero: a zero MLP decodes every token to its own cell in any frame, which is
what hid the two frames before.
"""
import pytest
import torch

from tests.helpers.det import build_tiny_detector
from vitamin_dense.models.owl import boxes_to_pixels

NO_FILTER = dict(score_thr=-1.0, nms_iou=None, max_per_img=10 ** 6, nms_pre=10 ** 6)


def _trained_looking_box_head(det) -> None:
    """Offsets of a few tokens in every direction, different per token."""
    torch.manual_seed(3)
    with torch.no_grad():
        det.head.box_head.dense2.weight.normal_(0, 0.3)
        det.head.box_head.dense2.bias.copy_(torch.tensor([0.4, -0.6, 1.2, 0.8]))


class _Sample:
    def __init__(self, hw, boxes=None, labels=None):
        from mmengine.structures import InstanceData
        self.metainfo = dict(img_shape=hw)
        self.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes or [[4., 4., 40., 30.]]),
            labels=torch.tensor(labels or [0]))


def _loss_path_outputs(det, canvas, sizes):
    """The head outputs the criterion receives in ``loss()`` (a spy on the real path)."""
    seen = {}

    def spy(outputs, *args, **kwargs):
        seen.update(outputs)
        return {'loss': outputs['boxes'].sum() * 0}

    det.criterion = spy
    det.train()
    with torch.no_grad():
        det.loss(canvas, [_Sample(hw) for hw in sizes])
    return seen


@pytest.fixture(scope='module')
def detector():
    det = build_tiny_detector(vocabulary='circle', frame_size=128, train_stride=32,
                              test_stride=32)
    _trained_looking_box_head(det)
    return det


def _predict_boxes(det, image, hw):
    """Per-token boxes of ``predict`` for a one-query vocabulary, ordered by score."""
    det.eval()
    out = det.detect(image, [dict(img_shape=hw)], rescale=False, test_cfg=NO_FILTER)[0]
    return out.bboxes, out.scores


def test_non_square_boxes_do_not_depend_on_batch_padding_or_path(detector):
    torch.manual_seed(0)
    h, w = 80, 128  # a 5:8 image: 5 x 8 tokens in an 8 x 8 frame
    image = torch.randn(1, 3, h, w)
    alone, alone_scores = _predict_boxes(detector, image, (h, w))
    assert len(alone) == 5 * 8
    # the same image in batches padded differently, next to other images
    for canvas_hw, other_hw in (((128, 128), (128, 96)), ((160, 176), (160, 176))):
        canvas = torch.zeros(2, 3, *canvas_hw)
        canvas[0, :, :h, :w] = image[0]
        canvas[1, :, :other_hw[0], :other_hw[1]] = torch.randn(3, *other_hw)
        detector.eval()
        got = detector.detect(canvas, [dict(img_shape=(h, w)), dict(img_shape=other_hw)],
                              rescale=False, test_cfg=NO_FILTER)[0]
        torch.testing.assert_close(got.bboxes, alone, rtol=0, atol=1e-4)
        torch.testing.assert_close(got.scores, alone_scores, rtol=0, atol=1e-6)

        # the loss path (training canvas, its own padding) decodes the same boxes
        out = _loss_path_outputs(detector, canvas, [(h, w), other_hw])
        gh, gw = out['grid_hw']
        px = boxes_to_pixels(out['boxes'], out['frames'])[0].reshape(gh, gw, 4)[:5, :8]
        scores = out['logits'][0, :, 0].sigmoid().reshape(gh, gw)[:5, :8].reshape(-1)
        order = scores.argsort(descending=True)
        torch.testing.assert_close(scores[order], alone_scores, rtol=0, atol=1e-5)
        clipped = px.reshape(-1, 4)[order]
        clipped = torch.stack([clipped[:, 0].clamp(0, w), clipped[:, 1].clamp(0, h),
                               clipped[:, 2].clamp(0, w), clipped[:, 3].clamp(0, h)], 1)
        torch.testing.assert_close(clipped, alone, rtol=0, atol=1e-3)
    # the offsets really move boxes off their cells, and differently on each axis
    cells = torch.tensor([[j * 16, i * 16, j * 16 + 16, i * 16 + 16]
                          for i in range(5) for j in range(8)], dtype=torch.float32)
    assert not torch.allclose(torch.sort(alone, 0).values, torch.sort(cells, 0).values, atol=2)


def test_per_axis_frames_would_decode_differently(detector):
    """The bug this fixes: normalising each axis by the grid (42 x 56 at test, 56 x 56 in
    training) turns the same offsets into other boxes on the short axis."""
    torch.manual_seed(0)
    feats = torch.randn(1, 5, 8, detector.head.in_channels)
    square = boxes_to_pixels(detector.head(feats, frames=[8])['boxes'][0], 8)
    per_axis = boxes_to_pixels(detector.head(feats, frames=[8])['boxes'][0], (5, 8))
    torch.testing.assert_close(square[:, [0, 2]], per_axis[:, [0, 2]])  # the long axis agrees
    assert (square[:, [1, 3]] - per_axis[:, [1, 3]]).abs().max() > 4  # the short one does not


def _features_seen(det, image, hw, training):
    seen = []
    real = det.extract_features

    def spy(images, valid_hw=None):
        feats = real(images, valid_hw)
        seen.append(feats)
        return feats

    det.extract_features = spy
    try:
        if training:
            _loss_path_outputs(det, image, [hw])
        else:
            _predict_boxes(det, image, hw)
    finally:
        del det.extract_features
    return seen[0][0, :-(-hw[0] // 16), :-(-hw[1] // 16)]


@pytest.mark.parametrize('test_stride,same', [(32, True), (64, False)])
def test_train_and_test_average_the_same_windows(test_stride, same):
    """Overlapping 64 px windows at stride 32: a token's features are the average of the
    windows that cover it. Training (padded canvas) and test see the same average only when
    the strides agree (the recipes' choice) -- the second case shows the test can fail."""
    det = build_tiny_detector(vocabulary='circle', frame_size=128, train_stride=32,
                              test_stride=test_stride)
    torch.manual_seed(1)
    hw = (80, 112)
    canvas = torch.zeros(1, 3, 128, 128)
    canvas[0, :, :80, :112] = torch.randn(3, 80, 112)
    with torch.no_grad():
        train_tokens = _features_seen(det, canvas, hw, training=True)
        test_tokens = _features_seen(det, canvas[..., :80, :112], hw, training=False)
    assert train_tokens.shape == test_tokens.shape == (5, 7, det.head.in_channels)
    assert torch.allclose(train_tokens, test_tokens, atol=1e-5) is same


def test_images_larger_than_the_frame_get_their_own_square():
    det = build_tiny_detector(vocabulary='circle', frame_size=64).eval()
    _trained_looking_box_head(det)
    torch.manual_seed(2)
    image = torch.randn(1, 3, 48, 112)  # longer than the 64 px frame: a 112 px square
    out = det.detect(image, [dict(img_shape=(48, 112))], rescale=False, test_cfg=NO_FILTER)[0]
    assert len(out) == 3 * 7
    assert det.frame_tokens([(48, 112), (30, 40)]).tolist() == [7, 4]
