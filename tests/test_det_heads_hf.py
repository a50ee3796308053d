"""Numeric equivalence of our OWL heads with Hugging Face transformers' OWLv2 / OWL-ViT.

A small randomly initialised ``Owlv2ForObjectDetection`` provides the
reference; its head weights are ported into :class:`OwlDetectionHead` and every
head output is compared to float tolerance.
"""
import pytest
import torch

from vitamin_dense.models.owl import OwlDetectionHead, grid_box_bias, select_query_embedding

VISION, TEXT, IMAGE, PATCH = 48, 32, 96, 16


def _randomise(module: torch.nn.Module, std: float = 0.3) -> None:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)


@pytest.fixture(scope='module')
def hf_v2():
    from transformers import Owlv2Config, Owlv2ForObjectDetection
    cfg = Owlv2Config(
        text_config=dict(hidden_size=TEXT, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=4),
        vision_config=dict(hidden_size=VISION, intermediate_size=37, num_hidden_layers=1,
                           num_attention_heads=4, image_size=IMAGE, patch_size=PATCH),
        projection_dim=TEXT)
    model = Owlv2ForObjectDetection(cfg).eval()
    _randomise(model)
    with torch.no_grad():  # centre the scale's input so both branches of the ELU are used
        model.class_head.logit_scale.bias.zero_()
    return model


@pytest.fixture(scope='module')
def ours(hf_v2):
    head = OwlDetectionHead(VISION, TEXT, box_anchor='corner', context='image').eval()
    head.load_owlv2_head_state(hf_v2.state_dict())
    return head


@pytest.fixture(scope='module')
def feature_map(hf_v2):
    """Merged token features: the HF embedder's output plus token-varying noise (a random
    1-layer tower gives nearly identical tokens, which would leave branches untested)."""
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(2, 3, IMAGE, IMAGE, generator=gen)
    with torch.no_grad():
        fmap = hf_v2.image_embedder(pixel_values=pixels)[0]
    return fmap + torch.randn(fmap.shape, generator=gen), pixels


def test_box_bias_matches_hf_square_and_non_square(hf_v2):
    torch.testing.assert_close(grid_box_bias(6, 6, 'corner'), hf_v2.compute_box_bias(6, 6),
                               rtol=1e-5, atol=1e-5)
    for h, w in [(3, 5), (7, 2), (1, 4)]:
        # HF normalises an interpolated non-square grid per axis
        ref = hf_v2.compute_box_bias(h, w)
        torch.testing.assert_close(grid_box_bias(h, w, 'corner', frame=(h, w)), ref,
                                   rtol=1e-5, atol=1e-5)
        # our default frame is the square an OWL processor pads to: the image's rows of
        # the square grid's bias
        n = max(h, w)
        square = hf_v2.compute_box_bias(n, n).reshape(n, n, 4)[:h, :w].reshape(-1, 4)
        torch.testing.assert_close(grid_box_bias(h, w, 'corner'), square, rtol=1e-5, atol=1e-5)


def test_merge_of_tokens_and_cls_matches_hf_image_embedder(hf_v2, ours, feature_map):
    _, pixels = feature_map
    with torch.no_grad():
        ref = hf_v2.image_embedder(pixel_values=pixels)[0]
        hidden = hf_v2.owlv2.vision_model(pixel_values=pixels)[0]
        normed = hf_v2.owlv2.vision_model.post_layernorm(hidden)
        b, n, d = normed.shape
        side = IMAGE // PATCH
        patches = normed[:, 1:].reshape(b, side, side, d)
        cls = normed[:, 0][:, None, None, :]
        merged = ours.merge(patches, cls)
    torch.testing.assert_close(merged, ref, rtol=1e-5, atol=1e-5)


def test_box_head_matches_hf(hf_v2, ours, feature_map):
    fmap, _ = feature_map
    b, h, w, d = fmap.shape
    with torch.no_grad():
        ref = hf_v2.box_predictor(fmap.reshape(b, h * w, d), fmap)
        got = ours.predict_boxes(fmap)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    # a non-square image: the tokens of its rows in the square frame HF's processor pads to
    sub = fmap[:, :3, :5].contiguous()
    with torch.no_grad():
        bias = hf_v2.compute_box_bias(5, 5).reshape(5, 5, 4)[:3].reshape(15, 4)
        ref = torch.sigmoid(hf_v2.box_head(sub.reshape(b, 15, d)) + bias)
        got = ours.predict_boxes(sub)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_class_head_with_shift_scale_and_query_mask_matches_hf(hf_v2, ours, feature_map):
    fmap, _ = feature_map
    b, h, w, d = fmap.shape
    queries = torch.randn(b, 5, TEXT)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        ref_logits, ref_embeds = hf_v2.class_predictor(fmap.reshape(b, h * w, d), queries, mask)
        out = ours(fmap, queries, mask)
    torch.testing.assert_close(out['logits'], ref_logits, rtol=1e-5, atol=1e-5)
    assert (out['logits'][0, :, 3:] == torch.finfo(torch.float32).min).all()
    # the scale term really is ELU(.) + 1 over both signs of its input
    scale_in = ours.class_head.logit_scale(fmap)
    assert (scale_in < 0).any() and (scale_in > 0).any()
    embeds = out['class_embeds'] / (out['class_embeds'].norm(dim=-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(embeds, ref_embeds, rtol=1e-5, atol=1e-6)


def test_objectness_head_matches_hf_and_is_detached(hf_v2, ours, feature_map):
    fmap, _ = feature_map
    b, h, w, d = fmap.shape
    with torch.no_grad():
        ref = hf_v2.objectness_predictor(fmap.reshape(b, h * w, d))
    feats = fmap.clone().requires_grad_(True)
    got = ours.predict_objectness(feats)
    torch.testing.assert_close(got.detach(), ref, rtol=1e-5, atol=1e-5)
    got.sum().backward()
    assert feats.grad is None  # no gradient reaches the features
    assert ours.objectness_head.dense0.weight.grad is not None
    ours.zero_grad(set_to_none=True)


def test_one_shot_selection_matches_hf_owlvit(hf_v2):
    """OWL-ViT v1's embed_image_query (whole query image as the exemplar)."""
    from transformers import OwlViTConfig, OwlViTForObjectDetection
    from torchvision.ops import box_convert, box_iou
    cfg = OwlViTConfig(text_config=hf_v2.config.text_config.to_dict(),
                       vision_config=hf_v2.config.vision_config.to_dict(),
                       projection_dim=TEXT)
    v1 = OwlViTForObjectDetection(cfg).eval()
    state = {k: v.clone() for k, v in hf_v2.state_dict().items()
             if k.startswith(('class_head.', 'box_head.', 'layer_norm.', 'objectness_head.'))}
    # large boxes, so that many overlap the exemplar well and the similarity rule decides
    state['box_head.dense2.bias'][2:] += 4.0
    state['box_head.dense2.weight'] *= 0.05
    v1.load_state_dict(state, strict=False)
    head = OwlDetectionHead(VISION, TEXT, box_anchor='corner').eval()
    head.load_owlv2_head_state(state)
    b, h, w, d = 2, 12, 12, VISION  # a larger grid than the config's: HF's interpolated path
    fmap = torch.randn(b, h, w, d, generator=torch.Generator().manual_seed(2))
    flat = fmap.reshape(b, h * w, d)
    with torch.no_grad():
        ref_embeds, ref_idx, _ = v1.embed_image_query(flat, fmap, interpolate_pos_encoding=True)
        out = head(fmap)
    boxes = box_convert(out['boxes'], 'cxcywh', 'xyxy')
    whole = torch.tensor([0., 0., 1., 1.])
    for i in range(b):
        ious = box_iou(whole[None], boxes[i])[0]
        assert (ious >= 0.8 * ious.max()).sum() >= 5  # a real choice among candidates
        sel = select_query_embedding(out['class_embeds'][i], boxes[i], whole)
        assert sel.index == int(ref_idx[i])
        assert sel.index != int(ious.argmax())  # not simply the best-overlapping box
        torch.testing.assert_close(sel.embedding, ref_embeds[i].reshape(-1), rtol=1e-5, atol=1e-6)
