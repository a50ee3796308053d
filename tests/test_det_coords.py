"""Boxes come back in original-image coordinates, for any size and aspect ratio, and
the images of a batch never influence each other."""
import numpy as np
import pytest
import torch

from tests.helpers.det import build_tiny_detector, zero_box_mlp
from vitamin_dense.models import OwlTestConfig

NO_FILTER = dict(score_thr=-1.0, nms_iou=None, max_per_img=10 ** 6, nms_pre=10 ** 6)


@pytest.fixture(scope='module')
def detector():
    det = build_tiny_detector(test_stride=32).eval()
    zero_box_mlp(det)  # every token predicts its 16 px cell: a known answer
    return det


def _lattice(det, image, meta, xstep, ystep, ori_hw):
    boxes = det.detect(image, [meta], test_cfg=NO_FILTER)[0].bboxes
    h, w = ori_hw
    assert boxes[:, [0, 2]].min() >= 0 and boxes[:, [1, 3]].min() >= 0
    assert boxes[:, 2].max() <= w + 1e-4 and boxes[:, 3].max() <= h + 1e-4
    # left / top edges lie on the token lattice scaled back to the original image
    for col, step in ((0, xstep), (1, ystep)):
        ratio = boxes[:, col] / step
        torch.testing.assert_close(ratio, ratio.round(), atol=1e-3, rtol=0)
    return boxes


def test_boxes_are_rescaled_to_a_non_square_original(detector):
    # original 200 x 300 (h x w) resized by 0.5 to a 100 x 150 input
    image = torch.randn(1, 3, 100, 150)
    meta = dict(img_shape=(100, 150), scale_factor=(0.5, 0.5), ori_shape=(200, 300))
    boxes = _lattice(detector, image, meta, 32, 32, (200, 300))
    assert boxes[:, 2].max() == pytest.approx(300) and boxes[:, 3].max() == pytest.approx(200)
    # anisotropic resize (as a fixed-size Resize without keep_ratio does): per-axis scales
    meta = dict(img_shape=(100, 150), scale_factor=(0.5, 0.25), ori_shape=(400, 300))
    _lattice(detector, image, meta, 32, 64, (400, 300))


def test_extreme_aspect_ratio_has_no_square_padding(detector):
    image = torch.randn(1, 3, 32, 400)  # 2 x 25 tokens; a square pad would make 25 x 25
    with torch.no_grad():
        out = detector.head(detector.extract_features(image))
    assert out['grid_hw'] == (2, 25)
    _lattice(detector, image, dict(img_shape=(32, 400)), 16, 16, (32, 400))


def test_batch_items_are_independent(detector):
    a, b = torch.randn(3, 90, 130), torch.randn(3, 120, 70)
    canvas = torch.zeros(2, 3, 128, 144)
    canvas[0, :, :90, :130] = a
    canvas[1, :, :120, :70] = b
    metas = [dict(img_shape=(90, 130), ori_shape=(90, 130)),
             dict(img_shape=(120, 70), ori_shape=(120, 70))]
    cfg = dict(score_thr=0.0, nms_iou=0.5, max_per_img=50)
    together = detector.detect(canvas, metas, test_cfg=cfg)
    alone_a = detector.detect(a[None], [metas[0]], test_cfg=cfg)[0]
    alone_b = detector.detect(b[None], [metas[1]], test_cfg=cfg)[0]
    for got, ref in ((together[0], alone_a), (together[1], alone_b)):
        torch.testing.assert_close(got.bboxes, ref.bboxes, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(got.scores, ref.scores, rtol=1e-4, atol=1e-5)
        assert torch.equal(got.labels, ref.labels)
    # changing the other image changes nothing
    canvas[1] = torch.randn(3, 128, 144)
    again = detector.detect(canvas, metas, test_cfg=cfg)[0]
    torch.testing.assert_close(again.scores, alone_a.scores, rtol=1e-4, atol=1e-5)


def test_mmdet_test_pipeline_round_trip(detector):
    """mmdet Resize(keep_ratio) + DetDataPreprocessor padding -> boxes on the original image."""
    from mmdet.datasets.transforms import PackDetInputs, Resize
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    rng = np.random.default_rng(0)
    samples = []
    for h, w in ((150, 400), (300, 120)):
        results = dict(img=rng.integers(0, 255, (h, w, 3), dtype=np.uint8), img_shape=(h, w),
                       ori_shape=(h, w), img_id=0, img_path='')
        results = Resize(scale=(128, 128), keep_ratio=True)(results)
        samples.append(PackDetInputs(meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                'scale_factor'))(results))
    pre = DetDataPreprocessor(mean=list(detector.backbone.pixel_mean),
                              std=list(detector.backbone.pixel_std), bgr_to_rgb=True,
                              pad_size_divisor=16)
    data = pre(dict(inputs=[s['inputs'] for s in samples],
                    data_samples=[s['data_samples'] for s in samples]), False)
    saved, detector.test_cfg = detector.test_cfg, OwlTestConfig(**NO_FILTER)
    try:
        out = detector.predict(data['inputs'], data['data_samples'])
    finally:
        detector.test_cfg = saved
    for sample, (h, w) in zip(out, ((150, 400), (300, 120))):
        boxes = sample.pred_instances.bboxes
        sw, sh = sample.metainfo['scale_factor']
        assert boxes[:, 2].max() == pytest.approx(w, abs=1e-3)
        assert boxes[:, 3].max() == pytest.approx(h, abs=1e-3)
        torch.testing.assert_close(boxes[:, 0] * sw / 16, (boxes[:, 0] * sw / 16).round(),
                                   atol=1e-3, rtol=0)
