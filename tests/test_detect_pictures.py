"""Detection and instance pictures at the defaults: one label per box, a threshold for
exemplar queries on their own scale, and instance overlays that show what is listed."""
import numpy as np
import pytest
import torch
from skimage import data as skdata

from vitamin_dense.apis import Detector
from vitamin_dense.apis.detector import one_label_per_box
from vitamin_dense.utils.defaults import DETECTION_THRESHOLD, EXEMPLAR_THRESHOLD
from vitamin_dense.visualization import draw_detections

VOCAB = 'cat,dog,grass,sky,tree,person,sofa,wall'


@pytest.fixture(scope='module')
def detector():
    torch.manual_seed(0)
    return Detector(model='ViTamin-Tiny', random_init=True, device='cpu', input_size=128,
                    max_detections=100)


def _pairwise_iou(boxes):
    from torchvision.ops import box_iou
    iou = box_iou(torch.as_tensor(boxes), torch.as_tensor(boxes))
    return iou.fill_diagonal_(0).max().item() if len(boxes) > 1 else 0.0


def test_one_label_per_box_by_default(detector):
    image = skdata.chelsea()
    one = detector(image, VOCAB, threshold=0.0)
    detector.one_label_per_box = False
    try:
        every = detector(image, VOCAB, threshold=0.0)
    finally:
        detector.one_label_per_box = True
    # random weights score every class on every token: boxes repeat with several labels
    boxes = [tuple(b) for b in every.boxes.round(2).tolist()]
    assert len(set(boxes)) < len(boxes)
    assert _pairwise_iou(every.boxes) > 0.99
    # by default each box carries one label, and boxes of one object are merged
    assert len({tuple(b) for b in one.boxes.round(2).tolist()}) == len(one)
    assert _pairwise_iou(one.boxes) <= 0.5 + 1e-6
    assert one.meta['one_label_per_box'] is True and len(one) > 0


def test_one_label_per_box_keeps_the_best_label():
    boxes = torch.tensor([[0., 0., 10., 10.], [0., 0., 10., 10.], [20., 20., 30., 30.],
                          [1., 0., 10., 10.]])
    scores = torch.tensor([0.3, 0.6, 0.2, 0.5])
    labels = torch.tensor([0, 1, 0, 2])
    b, s, lab = one_label_per_box(boxes, scores, labels, 0.5)
    assert s.tolist() == pytest.approx([0.6, 0.2]) and lab.tolist() == [1, 0]
    b, s, lab = one_label_per_box(boxes, scores, labels, None)  # exact duplicates only
    assert sorted(lab.tolist()) == [0, 1, 2]


def test_text_and_exemplar_queries_have_their_own_default_threshold(detector):
    assert detector.threshold == DETECTION_THRESHOLD
    assert detector.query_threshold == EXEMPLAR_THRESHOLD > DETECTION_THRESHOLD
    image = skdata.chelsea()
    text = detector(image, 'cat')
    shot = detector(image, query_image=image, query_boxes=[(150, 50, 300, 200)])
    assert text.meta['threshold'] == DETECTION_THRESHOLD
    assert shot.meta['threshold'] == EXEMPLAR_THRESHOLD
    assert (shot.scores >= EXEMPLAR_THRESHOLD).all() and (text.scores >= DETECTION_THRESHOLD).all()
    one_cut = Detector(model='ViTamin-Tiny', random_init=True, device='cpu', threshold=0.3)
    assert one_cut.query_threshold == 0.3  # a threshold given alone applies to both


def test_instance_overlay_shows_every_listed_instance_with_readable_tags():
    """The overlay used to hide instances below a hard-coded 0.3 (the listing showed 18, the
    picture 1) and wrote thin text: now it draws what the result lists, as detections."""
    from vitamin_dense.apis import MaskSegmentationResult
    image = np.full((60, 80, 3), 90, np.uint8)
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 5:30, 5:30] = True
    masks[1, 30:55, 40:75] = True
    instances = dict(masks=masks, labels=np.array([0, 1]), scores=np.array([0.25, 0.12]),
                     boxes=np.array([[5., 5., 30., 30.], [40., 30., 75., 55.]]))
    result = MaskSegmentationResult(
        labels=np.zeros((60, 80), np.int16), class_names=['circle', 'square'],
        scores=torch.full((2, 15, 20), 0.5), scores_are_logits=False, image=image,
        task='instance', instances=instances)
    picture = result.overlay()
    expected = draw_detections(image, instances['boxes'], instances['labels'],
                               instances['scores'], ['circle', 'square'], masks=masks)
    np.testing.assert_array_equal(picture, expected)
    only_best = result.overlay(score_threshold=0.2)
    assert not np.array_equal(only_best, picture)
