"""The CLS-token substitute: ViTamin's pooled image token, over the image's valid tokens."""
import pytest
import torch

from tests.helpers.det import build_tiny_detector
from vitamin_dense.models.owl import masked_token_mean


@pytest.fixture(scope='module')
def detector():
    return build_tiny_detector().eval()


def test_image_context_is_vitamins_own_pooled_image_token(detector):
    """On one window, proj(context) is exactly open_clip's image embedding (before normalising)."""
    bb = detector.backbone
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = bb(x)['s16'].permute(0, 2, 3, 1)
        context = bb.trunk.fc_norm(masked_token_mean(tokens))
        reference = bb.visual(x)  # open_clip's image tower: pool -> fc_norm -> proj
        torch.testing.assert_close(bb.visual.head(context), reference, rtol=1e-4, atol=1e-5)
        # and the detector's features are LayerNorm(fc_norm(token) * that context)
        expected = detector.head.layer_norm(bb.trunk.fc_norm(tokens) * context[:, None, None])
        torch.testing.assert_close(detector.extract_features(x), expected, rtol=1e-5, atol=1e-5)


def test_context_ignores_batch_padding(detector):
    """An image in a padded canvas gets the features it gets alone (context over valid tokens)."""
    image = torch.randn(1, 3, 128, 128)
    canvas = torch.zeros(1, 3, 192, 192)  # normalised zero = the mean colour, as mmdet pads
    canvas[..., :128, :128] = image
    with torch.no_grad():
        alone = detector.extract_features(image)
        padded = detector.extract_features(canvas, valid_hw=[(128, 128)])[:, :8, :8]
        unmasked = detector.extract_features(canvas)[:, :8, :8]
    torch.testing.assert_close(padded, alone, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(unmasked, alone, atol=1e-3)  # padding would leak in otherwise


def test_context_modes_differ_and_none_is_plain_layernorm(detector):
    x = torch.randn(1, 3, 64, 128)
    bb = detector.backbone
    feats = {}
    with torch.no_grad():
        for mode in ('image', 'window', 'none'):
            detector.head.context = mode
            feats[mode] = detector.extract_features(x)
        detector.head.context = 'image'
        tokens = bb(x)['s16'].permute(0, 2, 3, 1)
        torch.testing.assert_close(feats['none'], detector.head.layer_norm(bb.trunk.fc_norm(tokens)))
    assert not torch.allclose(feats['image'], feats['none'], atol=1e-3)
    assert not torch.allclose(feats['image'], feats['window'], atol=1e-3)
