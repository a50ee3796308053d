"""Segmentation heads against the OpenMMLab reference implementations.

* Multi-scale deformable attention: our PyTorch path against mmcv's
  ``multi_scale_deformable_attn_pytorch`` and its ``MultiScaleDeformableAttention``
  module (same weights), and mmcv's compiled kernel where it exists (CUDA).
* Pixel decoder: mmdet's ``MSDeformAttnPixelDecoder`` with its weights ported.
* Transformer decoder: mmdet's ``Mask2FormerHead`` (pixel decoder + masked
  attention decoder) with weights ported: every step's mask logits, and its
  linear classifier applied to our normalised queries.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttention,
                                              multi_scale_deformable_attn_pytorch)
from mmengine.config import ConfigDict

from vitamin_dense.errors import ConfigError
from vitamin_dense.heads import (MaskedAttentionDecoder, MSDeformAttn, DeformablePixelDecoder,
                                 mmcv_kernel_available, ms_deform_attn, ms_deform_attn_pytorch)
from vitamin_dense.models.fcclip import FCCLIPHead, geometric_ensemble

SHAPES = [(9, 13), (5, 7), (3, 4)]
IN_CHANNELS = [16, 32, 64, 64]
# s4 .. s32 of an odd-sized image (ceil division at every level)
FEAT_SIZES = [(36, 52), (18, 26), (9, 13), (5, 7)]


def _msda_inputs(b=2, heads=4, dim=8, points=3, nq=17):
    nv = sum(h * w for h, w in SHAPES)
    value = torch.randn(b, nv, heads, dim)
    loc = torch.rand(b, nq, heads, len(SHAPES), points, 2) * 1.2 - 0.1  # some outside the map
    weights = torch.rand(b, nq, heads, len(SHAPES), points)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    return value, loc, weights


def test_ms_deform_attn_matches_mmcv_reference():
    value, loc, weights = _msda_inputs()
    ours = ms_deform_attn_pytorch(value, SHAPES, loc, weights)
    ref = multi_scale_deformable_attn_pytorch(value, torch.tensor(SHAPES), loc, weights)
    assert ours.shape == (2, 17, 32)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    # the dispatcher picks the PyTorch path where mmcv has no kernel (CPU in mmcv 2.1)
    torch.testing.assert_close(ms_deform_attn(value, torch.tensor(SHAPES), loc, weights), ref,
                               rtol=1e-5, atol=1e-5)


def test_ms_deform_attn_gradients_match_mmcv_reference():
    value, loc, weights = _msda_inputs()
    grads = []
    for fn in (lambda *a: ms_deform_attn_pytorch(*a),
               lambda v, s, l, w: multi_scale_deformable_attn_pytorch(v, torch.tensor(s), l, w)):
        v, lo, w = (t.clone().requires_grad_() for t in (value, loc, weights))
        fn(v, SHAPES, lo, w).square().sum().backward()
        grads.append((v.grad, lo.grad, w.grad))
    for ours, ref in zip(*grads):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not (torch.cuda.is_available() and mmcv_kernel_available('cuda')),
                    reason='mmcv 2.1 has MSDeformAttn kernels for CUDA/MLU only: needs a GPU '
                    'and an mmcv built with CUDA ops')
def test_ms_deform_attn_matches_mmcv_compiled_kernel():  # pragma: no cover - GPU only
    value, loc, weights = (t.cuda() for t in _msda_inputs())
    ours = ms_deform_attn(value, SHAPES, loc, weights, impl='pytorch')
    ref = ms_deform_attn(value, SHAPES, loc, weights, impl='mmcv')
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_ms_deform_attn_compiled_kernel_errors_clearly_where_absent():
    value, loc, weights = _msda_inputs()
    if mmcv_kernel_available('cpu'):  # pragma: no cover - a future mmcv with a CPU kernel
        torch.testing.assert_close(ms_deform_attn(value, SHAPES, loc, weights, impl='mmcv'),
                                   ms_deform_attn_pytorch(value, SHAPES, loc, weights),
                                   rtol=1e-4, atol=1e-4)
    else:
        with pytest.raises(ConfigError, match="impl='pytorch'"):
            ms_deform_attn(value, SHAPES, loc, weights, impl='mmcv')
    with pytest.raises(ConfigError, match='impl must be one of'):
        ms_deform_attn(value, SHAPES, loc, weights, impl='cuda')


def test_ms_deform_attn_module_matches_mmcv_module():
    ref = MultiScaleDeformableAttention(embed_dims=32, num_heads=4, num_levels=3, num_points=3,
                                        batch_first=True).eval()
    ours = MSDeformAttn(32, num_heads=4, num_levels=3, num_points=3).eval()
    # same init (Deformable DETR's), then the same random weights
    torch.testing.assert_close(ours.sampling_offsets.bias, ref.sampling_offsets.bias)
    for p in ref.parameters():
        torch.nn.init.normal_(p, std=0.1)
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=True)
    nv = sum(h * w for h, w in SHAPES)
    query = torch.randn(2, nv, 32)
    pos = torch.randn(2, nv, 32)
    refs = torch.rand(2, nv, 3, 2)
    shapes = torch.tensor(SHAPES)
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    expected = ref(query, value=query, query_pos=pos, reference_points=refs,
                   spatial_shapes=shapes, level_start_index=start)
    torch.testing.assert_close(ours(query, refs, query, SHAPES, query_pos=pos), expected,
                               rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------- pixel decoder
def _mmdet_pixel_decoder_cfg(feat=64, heads=4, layers=2, groups=8):
    return ConfigDict(
        type='MSDeformAttnPixelDecoder', num_outs=3,
        norm_cfg=dict(type='GN', num_groups=groups), act_cfg=dict(type='ReLU'),
        encoder=dict(num_layers=layers, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=feat, num_heads=heads, num_levels=3, num_points=4,
                               dropout=0.0, batch_first=True),
            ffn_cfg=dict(embed_dims=feat, feedforward_channels=2 * feat, num_fcs=2,
                         ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True)))),
        positional_encoding=dict(num_feats=feat // 2, normalize=True))


def _port_pixel_decoder(state: dict) -> dict:
    """mmdet MSDeformAttnPixelDecoder parameter names -> ours."""
    out = {}
    for key, value in state.items():
        k = key
        for old, new in (('input_convs.', 'input_projs.'), ('level_encoding.', 'level_embed.'),
                         ('mask_feature.', 'mask_features.'), ('encoder.layers.', 'encoder_layers.'),
                         ('.ffn.layers.0.0.', '.linear1.'), ('.ffn.layers.1.', '.linear2.'),
                         ('.norms.0.', '.norm1.'), ('.norms.1.', '.norm2.'),
                         ('.conv.', '.0.'), ('.gn.', '.1.')):
            k = k.replace(old, new)
        out[k] = value
    return out


def _randomise(module):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def _feats(b=2):
    return [torch.randn(b, c, h, w) for c, (h, w) in zip(IN_CHANNELS, FEAT_SIZES)]


def test_pixel_decoder_matches_mmdet():
    from mmdet.models.layers import MSDeformAttnPixelDecoder as MMDetPixelDecoder
    ref = MMDetPixelDecoder(in_channels=IN_CHANNELS, strides=[4, 8, 16, 32], feat_channels=64,
                            out_channels=48, **{k: v for k, v in _mmdet_pixel_decoder_cfg().items()
                                                if k != 'type'}).eval()
    _randomise(ref)
    ours = DeformablePixelDecoder(IN_CHANNELS, feat_channels=64, out_channels=48, num_layers=2,
                                    num_heads=4, ffn_channels=128, num_groups=8, impl='pytorch').eval()
    ours.load_state_dict(_port_pixel_decoder(ref.state_dict()), strict=True)
    feats = _feats()
    with torch.no_grad():
        mask_ref, multi_ref = ref(feats)
        mask_ours, multi_ours = ours(feats)
    assert mask_ours.shape == (2, 48, *FEAT_SIZES[0])
    assert [tuple(m.shape[-2:]) for m in multi_ours] == FEAT_SIZES[:0:-1]
    torch.testing.assert_close(mask_ours, mask_ref, rtol=1e-4, atol=1e-4)
    for a, b in zip(multi_ours, multi_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------- transformer decoder
def _mmdet_head(num_queries=12, layers=4, feat=64, heads=4):
    from mmdet.models.dense_heads import Mask2FormerHead
    cfg = ConfigDict(
        in_channels=IN_CHANNELS, strides=[4, 8, 16, 32], feat_channels=feat, out_channels=feat,
        num_things_classes=3, num_stuff_classes=2, num_queries=num_queries,
        num_transformer_feat_level=3, pixel_decoder=_mmdet_pixel_decoder_cfg(feat, heads),
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=feat // 2, normalize=True),
        transformer_decoder=dict(
            return_intermediate=True, num_layers=layers,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat, num_heads=heads, dropout=0.0, batch_first=True),
                cross_attn_cfg=dict(embed_dims=feat, num_heads=heads, dropout=0.0, batch_first=True),
                ffn_cfg=dict(embed_dims=feat, feedforward_channels=2 * feat, num_fcs=2,
                             ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True))),
            init_cfg=None),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
                      reduction='mean', class_weight=[1.0] * 5 + [0.1]))
    # mmdet builds its sub-modules from the current default scope: make it mmdet's
    # (another test may have left a runner's 'vitamin_dense' scope current)
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        return Mask2FormerHead(**cfg).eval()


def _port_head(state: dict) -> dict:
    """mmdet Mask2FormerHead parameter names -> our FCCLIPHead's decoders."""
    out = {}
    for key, value in state.items():
        if key.startswith('pixel_decoder.'):
            for k, v in _port_pixel_decoder({key[len('pixel_decoder.'):]: value}).items():
                out['pixel_decoder.' + k] = v
            continue
        if key.startswith('cls_embed.'):
            continue
        k = key
        for old, new in (('.cross_attn.attn.', '.cross_attn.'), ('.self_attn.attn.', '.self_attn.'),
                         ('.norms.0.', '.norm1.'), ('.norms.1.', '.norm2.'), ('.norms.2.', '.norm3.'),
                         ('.ffn.layers.0.0.', '.linear1.'), ('.ffn.layers.1.', '.linear2.'),
                         ('transformer_decoder.post_norm.', 'transformer_decoder.decoder_norm.'),
                         ('decoder_input_projs.', 'transformer_decoder.input_projs.'),
                         ('mask_embed.0.', 'transformer_decoder.mask_embed.layers.0.'),
                         ('mask_embed.2.', 'transformer_decoder.mask_embed.layers.1.'),
                         ('mask_embed.4.', 'transformer_decoder.mask_embed.layers.2.')):
            k = k.replace(old, new)
        for name in ('query_embed.', 'query_feat.', 'level_embed.'):
            if k.startswith(name):
                k = 'transformer_decoder.' + k
        out[k] = value
    return out


def _our_head(num_queries=12, layers=4, feat=64, heads=4):
    return FCCLIPHead(IN_CHANNELS, embed_dim=32, hidden_dim=feat, num_queries=num_queries,
                      num_decoder_layers=layers, num_heads=heads,
                      pixel_decoder=dict(num_layers=2, ffn_channels=2 * feat, num_groups=8,
                                         impl='pytorch'),
                      transformer_decoder=dict(ffn_channels=2 * feat)).eval()


def test_transformer_decoder_matches_mmdet_mask2former():
    from mmdet.structures import DetDataSample
    ref = _mmdet_head()
    _randomise(ref)
    ours = _our_head()
    ported = _port_head(ref.state_dict())
    missing, unexpected = ours.load_state_dict(ported, strict=False)
    # only FC-CLIP's classifier is not in mmdet's head
    assert not unexpected
    assert sorted({m.split('.')[0] for m in missing}) == [
        'class_embed', 'logit_scale', 'mask_pooling_proj', 'void_embedding']
    feats = _feats()
    samples = [DetDataSample(metainfo=dict(img_shape=(144, 208), batch_input_shape=(144, 208)))
               for _ in range(2)]
    emb = F.normalize(torch.randn(5, 32), dim=-1)
    with torch.no_grad():
        cls_ref, masks_ref = ref(feats, samples)
        out = ours(feats, emb)
        steps = ours.transformer_decoder(*reversed(ours.pixel_decoder(feats)))
    assert len(out['pred_masks']) == len(masks_ref) == 5
    for a, b in zip(out['pred_masks'], masks_ref):
        assert a.shape == (2, 12, *FEAT_SIZES[0])
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # our normalised queries through mmdet's linear classifier give mmdet's class logits
    for step, logits in zip(steps, cls_ref):
        torch.testing.assert_close(ref.cls_embed(step.queries), logits, rtol=1e-4, atol=1e-4)
    assert [tuple(x.shape) for x in out['pred_logits']] == [(2, 12, 6)] * 5


def test_head_inference_classifies_last_step_only_and_gradients_flow():
    head = _our_head(num_queries=6, layers=2).train()
    feats = _feats(1)
    emb = F.normalize(torch.randn(4, 32), dim=-1)
    out = head(feats, emb, all_steps=False)
    assert len(out['pred_logits']) == 1 and len(out['pred_masks']) == 1
    out = head(feats, emb)
    loss = sum(x.logsumexp(-1).mean() for x in out['pred_logits']) + \
        sum(m.sigmoid().mean() for m in out['pred_masks'])
    loss.backward()
    assert head.logit_scale.grad is not None and head.void_embedding.weight.grad is not None
    assert head.transformer_decoder.query_feat.weight.grad.abs().sum() > 0
    assert math.isclose(head.logit_scale.exp().item(), 1 / 0.07, rel_tol=1e-5)


# ------------------------------------------------------------------- ensemble
def test_geometric_ensemble_matches_fcclip_formula():
    torch.manual_seed(3)
    b, q, k = 2, 5, 6
    in_logits = torch.randn(b, q, k + 1) * 3
    out_logits = torch.randn(b, q, k) * 3
    seen = torch.tensor([1, 1, 0, 1, 0, 0], dtype=torch.bool)
    valid = torch.tensor([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    probs = geometric_ensemble(in_logits, out_logits, seen, 0.45, 0.7, valid)
    # FC-CLIP's (probability-space) formula, written out
    p_in = in_logits[..., :-1].softmax(-1)
    p_out = out_logits.softmax(-1)
    a = torch.full_like(p_in, 0.45) * valid[..., None]
    bb = torch.full_like(p_in, 0.7) * valid[..., None]
    m = seen.long()
    cls = (p_in ** (1 - a) * p_out ** a).log() * m + (p_in ** (1 - bb) * p_out ** bb).log() * (1 - m)
    void = in_logits.softmax(-1)[..., -1:]
    expected = torch.cat([cls.softmax(-1) * (1 - void), void], -1)
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probs.sum(-1), torch.ones(b, q))
    # switches: in-vocabulary only is Mask2Former's softmax over K + 1
    torch.testing.assert_close(geometric_ensemble(in_logits, out_logits, seen, use_out_vocab=False),
                               in_logits.softmax(-1), rtol=1e-5, atol=1e-6)
    only_out = geometric_ensemble(in_logits, out_logits, seen, use_in_vocab=False)
    torch.testing.assert_close(only_out[..., :-1] / (1 - void), p_out, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError):
        geometric_ensemble(in_logits, out_logits, seen, use_in_vocab=False, use_out_vocab=False)


def test_decoder_config_errors_are_one_line():
    with pytest.raises(ConfigError, match='divisible'):
        MaskedAttentionDecoder(hidden_dim=30, num_heads=4)
    with pytest.raises(ConfigError, match='increasing'):
        DeformablePixelDecoder([8, 8], strides=[8, 4], feat_channels=32, num_groups=8,
                                 num_encoder_levels=1, num_outs=1)
    with pytest.raises(ConfigError, match='num_groups'):
        DeformablePixelDecoder(IN_CHANNELS, feat_channels=40, num_groups=32)


# ------------------------------------------------- speed paths, same results
def test_gather_equals_grid_sample_over_blocks_of_queries(monkeypatch):
    """The weighted gather (the default PyTorch path) against grid_sample, with the
    queries split into several blocks and samples falling outside the maps."""
    import importlib
    msda = importlib.import_module('vitamin_dense.heads.ms_deform_attn')  # the module
    value, loc, weights = _msda_inputs(b=2, heads=4, dim=8, points=3, nq=50)
    reference = msda.ms_deform_attn_grid_sample(value, SHAPES, loc, weights)
    monkeypatch.setattr(msda, '_GATHER_BLOCK', 2 * 4 * 3 * 3 * 7)  # blocks of 7 queries
    torch.testing.assert_close(ms_deform_attn_pytorch(value, SHAPES, loc, weights), reference,
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ms_deform_attn(value, SHAPES, loc, weights, impl='grid_sample'),
                               reference)
    # exactly on pixel centres and corners, and far outside
    loc = torch.tensor([0.0, 0.5 / 13, 1.0, 2.0, -1.0])[torch.randint(0, 5, loc.shape)]
    torch.testing.assert_close(ms_deform_attn_pytorch(value, SHAPES, loc, weights),
                               msda.ms_deform_attn_grid_sample(value, SHAPES, loc, weights),
                               rtol=1e-5, atol=1e-5)


def test_decoder_inference_masks_at_attention_resolution_match_full_ones():
    """Inference computes the intermediate masks at the attention resolution only;
    the final masks equal those of the full-resolution steps (keep_all)."""
    torch.manual_seed(0)
    dec = MaskedAttentionDecoder(in_channels=32, mask_channels=32, hidden_dim=32,
                                 num_queries=10, num_layers=4, num_heads=4, ffn_channels=64,
                                 num_feature_levels=3).eval()
    feats = [torch.randn(2, 32, *FEAT_SIZES[i]) for i in (3, 2, 1)]
    mask_features = torch.randn(2, 32, *FEAT_SIZES[0])
    with torch.no_grad():
        full = dec(feats, mask_features, keep_all=True)
        fast = dec(feats, mask_features, keep_all=False)
        assert len(fast) == 1 and fast[0].masks.shape == full[-1].masks.shape
        torch.testing.assert_close(fast[0].masks, full[-1].masks, rtol=1e-4, atol=5e-5)
        torch.testing.assert_close(fast[0].queries, full[-1].queries, rtol=1e-4, atol=5e-5)
        # one step: resizing the features first gives the resized masks
        query = torch.randn(2, 10, 32)
        size = FEAT_SIZES[2]
        small = F.interpolate(mask_features, size=size, mode='bilinear', align_corners=False)
        step, mask = dec.predict_masks(query, mask_features, size)
        low, low_mask = dec.predict_masks(query, mask_features, size, attn_features=small)
    assert low.masks is None
    torch.testing.assert_close(low.queries, step.queries)
    assert (low_mask != mask).float().mean() < 1e-3
