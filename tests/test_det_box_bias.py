"""The fixed box bias: a zero MLP output decodes to each token's own 16 px cell, in a
square frame (the grid's longer side by default, as OWL pads to a square)."""
import pytest
import torch

from vitamin_dense.errors import ConfigError
from vitamin_dense.models.owl import OwlDetectionHead, boxes_to_pixels, grid_box_bias, pixels_to_boxes


@pytest.mark.parametrize('h,w', [(1, 1), (1, 7), (5, 3), (21, 21), (56, 84)])
def test_center_bias_decodes_to_token_cells(h, w):
    boxes = torch.sigmoid(grid_box_bias(h, w, 'center'))
    assert boxes.shape == (h * w, 4)
    n = max(h, w)  # the square frame
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    cx = (jj.flatten() + 0.5) / n
    cy = (ii.flatten() + 0.5) / n
    torch.testing.assert_close(boxes[:, 0], cx.float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(boxes[:, 1], cy.float(), atol=1e-6, rtol=0)
    # sizes: one token on both axes (a frame one token wide caps at 1 - 1e-6)
    torch.testing.assert_close(boxes[:, 2:], torch.full((h * w, 2), min(1 / n, 1 - 1e-6)),
                               atol=1e-6, rtol=0)
    pixels = boxes_to_pixels(boxes, n)
    expected = torch.stack([jj.flatten() * 16, ii.flatten() * 16,
                            jj.flatten() * 16 + 16, ii.flatten() * 16 + 16], 1).float()
    torch.testing.assert_close(pixels, expected, atol=2e-3, rtol=0)


def test_corner_bias_is_owl_convention_and_saturates_at_the_edge():
    bias = grid_box_bias(4, 4, 'corner')
    # bottom-right corner of token (0, 0) is (0.25, 0.25); the last token sits at 1.0
    assert torch.sigmoid(bias[0, 0]).item() == pytest.approx(0.25, abs=1e-3)
    assert bias[-1, 0].item() > 9  # logit(1 + 1e-4): why 'center' is our default


def test_a_larger_frame_keeps_the_cells_in_pixels():
    for frame in (7, 10):
        pixels = boxes_to_pixels(torch.sigmoid(grid_box_bias(3, 7, frame=frame)), frame)
        torch.testing.assert_close(pixels, boxes_to_pixels(torch.sigmoid(grid_box_bias(3, 7)), 7),
                                   atol=2e-3, rtol=0)
    # tokens beyond the frame (batch padding) are clamped to its last cell, never NaN
    assert torch.isfinite(grid_box_bias(3, 9, frame=7)).all()


def test_zero_mlp_head_predicts_cells_on_non_square_grid():
    head = OwlDetectionHead(8, 4)  # dense2 starts at zero: boxes are the cells
    feats = torch.randn(2, 3, 5, 8)
    boxes = head.predict_boxes(feats)
    torch.testing.assert_close(boxes, torch.sigmoid(grid_box_bias(3, 5)).expand(2, -1, -1))


def test_pixel_round_trip_and_bad_anchor():
    boxes = torch.tensor([[0.2, 0.3, 0.1, 0.4], [0.5, 0.5, 1.0, 1.0]])
    back = pixels_to_boxes(boxes_to_pixels(boxes, (7, 10)), (7, 10))
    torch.testing.assert_close(back, boxes)
    with pytest.raises(ConfigError, match='anchor'):
        OwlDetectionHead(8, 4, box_anchor='middle')
    with pytest.raises(ConfigError, match='context'):
        OwlDetectionHead(8, 4, context='cls')
