"""The options that make our FC-CLIP the published Sliding FC-CLIP, each on its own:
synonym reduction, learned global position maps, ``s32`` by subsampling, the
ensemble on all masks, the whole pixel decoder in float32 under autocast,
FC-CLIP's weight-decay groups, and the published model config choosing them.
"""
import copy
import os

import pytest
import torch
import torch.nn.functional as F

from vitamin_dense.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLISHED = os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_l_coco.py')


def _tiny(**overrides):
    from vitamin_dense.registry import MODELS, register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = dict(type='FCCLIPSegmentor',
               backbone=dict(type='ViTaminBackbone', model_name='ViTamin-Tiny', weights=None,
                             test_stride=32,
                             with_clip_map=False),
               text_encoder=dict(templates='single', disk_cache=False),
               head=dict(hidden_dim=32, num_queries=4, num_decoder_layers=1, num_heads=2,
                         pixel_decoder=dict(num_layers=1, ffn_channels=32, num_groups=8),
                         transformer_decoder=dict(ffn_channels=32)))
    cfg.update(overrides)
    return MODELS.build(cfg)


def test_synonym_reduce_mean_and_max():
    from vitamin_dense.models.fcclip.head import cosine_logits
    torch.manual_seed(0)
    vocab = 'cat, kitten; dog; sky, heaven, air'
    mean = _tiny(test_vocabulary=vocab)
    assert mean.class_embeddings('test').shape == (3, 64)
    maxed = _tiny(test_vocabulary=vocab, synonym_reduce='max')
    maxed.load_state_dict(mean.state_dict())
    rows = maxed.text_encoder.encode_synonyms(vocab)
    grouped = maxed.class_embeddings('test')
    assert rows.shape == (6, 64) and grouped.shape == (3, 3, 64)
    torch.testing.assert_close(grouped[0], rows[[0, 1, 0]])
    x = torch.randn(1, 3, 64, 96)
    for model in (mean, maxed):
        with torch.no_grad():
            out = model.eval()._forward(x)
        assert out['class_probs'].shape == (1, 4, 4)
        torch.testing.assert_close(out['class_probs'].sum(-1), torch.ones(1, 4))
    # max: each class's logit is its best synonym's, in both classifiers
    embed = torch.randn(2, 5, 64)
    per_synonym = cosine_logits(embed, rows, torch.tensor(10.0))
    expected = torch.stack([per_synonym[..., :2].amax(-1), per_synonym[..., 2],
                            per_synonym[..., 3:6].amax(-1)], -1)
    torch.testing.assert_close(cosine_logits(embed, grouped, torch.tensor(10.0)), expected)
    with torch.no_grad():
        feats = maxed.extract_feat(x)
        per_class = maxed.head(feats, grouped, all_steps=False)['pred_logits'][-1]
        one_class_each = maxed.head(feats, rows, all_steps=False)['pred_logits'][-1]
    torch.testing.assert_close(per_class, torch.cat([
        one_class_each[..., :2].amax(-1, keepdim=True), one_class_each[..., 2:3],
        one_class_each[..., 3:6].amax(-1, keepdim=True), one_class_each[..., 6:]], -1))
    with pytest.raises(ConfigError, match='synonym_reduce'):
        _tiny(synonym_reduce='median')


def test_global_position_maps_exact_size_error_and_interpolation():
    from vitamin_dense.models.fcclip.global_position import GlobalPositionMaps
    maps = GlobalPositionMaps({'s4': 3, 's8': 5}, {'s4': 4, 's8': 8}, size=64)
    assert maps.s4.shape == (1, 3, 16, 16) and maps.s8.shape == (1, 5, 8, 8)
    feats = {'s4': torch.zeros(2, 3, 16, 16), 's8': torch.ones(2, 5, 8, 8), 'clip': torch.ones(1)}
    out = maps(feats)
    torch.testing.assert_close(out['s4'], maps.s4.detach().expand(2, -1, -1, -1))
    torch.testing.assert_close(out['s8'], 1 + maps.s8.detach().expand(2, -1, -1, -1))
    assert out['clip'] is feats['clip'] and feats['s4'].abs().sum() == 0  # inputs untouched
    small = {'s4': torch.zeros(1, 3, 16, 12), 's8': torch.zeros(1, 5, 8, 6)}
    with pytest.raises(ConfigError) as exc:
        maps(small)
    assert '\n' not in str(exc.value) and '64x64' in str(exc.value) and '64x48' in str(exc.value)
    maps.interpolate = True
    out = maps(small)
    torch.testing.assert_close(out['s4'], F.interpolate(maps.s4.detach(), size=(16, 12),
                                                        mode='bilinear', align_corners=False))
    with pytest.raises(ConfigError, match='multiple'):
        GlobalPositionMaps({'s32': 4}, {'s32': 32}, size=100)


def test_segmentor_adds_global_maps_to_the_head_inputs_only():
    torch.manual_seed(0)
    model = _tiny(global_pos_embed=dict(size=128), test_vocabulary='cat; dog')
    assert model.fixed_input_size == 128
    assert {k for k in model.state_dict() if k.startswith('global_pos_embed.')} == {
        f'global_pos_embed.s{s}' for s in (4, 8, 16, 32)}
    feats = {k: torch.randn(1, c, 128 // s, 128 // s) for k, c, s in (
        ('s4', 16, 4), ('s8', 32, 8), ('s16', 64, 16), ('s32', 64, 32))}
    head_in = model.head_inputs(feats)
    torch.testing.assert_close(head_in['s8'] - feats['s8'], model.global_pos_embed.s8.detach())
    model.eval()
    with torch.no_grad():
        assert model._forward(torch.randn(1, 3, 128, 128))['mask_logits'].shape == (1, 4, 32, 32)
        with pytest.raises(ConfigError, match='interpolate=True'):
            model._forward(torch.randn(1, 3, 96, 128))
    from vitamin_dense.models.fcclip.global_position import build_global_position_maps
    with pytest.raises(ConfigError, match='global_pos_embed'):
        build_global_position_maps(dict(size=128, mode='bilinear'), {'s4': 3}, {'s4': 4}, ['s4'])
    model.global_pos_embed.interpolate = True  # global_pos_embed=dict(size=128, interpolate=True)
    assert model.fixed_input_size is None
    with torch.no_grad():
        assert model.eval()._forward(torch.randn(1, 3, 96, 128))['mask_logits'].shape == \
            (1, 4, 24, 32)


def test_s32_by_subsampling_or_max_pooling():
    from vitamin_dense.backbones import ViTaminBackbone
    torch.manual_seed(0)
    pooled = ViTaminBackbone('ViTamin-Tiny', weights=None).eval()
    sub = ViTaminBackbone('ViTamin-Tiny', weights=None, s32_mode='subsample').eval()
    sub.load_state_dict(pooled.state_dict())
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        a, b = pooled(x), sub(x)
    torch.testing.assert_close(a['s16'], b['s16'])
    torch.testing.assert_close(b['s32'], b['s16'][..., ::2, ::2])
    torch.testing.assert_close(a['s32'], F.max_pool2d(a['s16'], 2, 2, ceil_mode=True))
    assert b['s32'].shape == a['s32'].shape == (1, 64, 3, 5)
    with pytest.raises(ConfigError, match='s32_mode'):
        ViTaminBackbone('ViTamin-Tiny', weights=None, s32_mode='avg_pool')


def test_ensemble_on_valid_mask_option():
    from vitamin_dense.models.fcclip.head import geometric_ensemble
    torch.manual_seed(0)
    in_logits, out_logits = torch.randn(1, 3, 5), torch.randn(1, 3, 4)
    seen = torch.tensor([True, False, True, False])
    valid = torch.tensor([[True, False, True]])
    everywhere = geometric_ensemble(in_logits, out_logits, seen, 0.45, 0.7)
    valid_only = geometric_ensemble(in_logits, out_logits, seen, 0.45, 0.7, valid)
    torch.testing.assert_close(everywhere[:, valid[0]], valid_only[:, valid[0]])
    p_void = in_logits.softmax(-1)[..., -1:]
    torch.testing.assert_close(valid_only[0, 1, :-1],
                               in_logits[0, 1, :-1].softmax(-1) * (1 - p_void[0, 1]))
    assert not torch.allclose(everywhere[0, 1], valid_only[0, 1])
    model = _tiny(ensemble=dict(ensemble_on_valid_mask=False))
    assert model.ensemble['ensemble_on_valid_mask'] is False
    with pytest.raises(ConfigError, match='valid_masks_only'):
        _tiny(ensemble=dict(valid_masks_only=False))


def test_whole_pixel_decoder_in_float32_under_autocast():
    from vitamin_dense.heads.pixel_decoder import DeformablePixelDecoder
    torch.manual_seed(0)
    feats = [torch.randn(1, c, 64 // s, 64 // s) for c, s in ((16, 4), (32, 8), (64, 16),
                                                               (64, 32))]
    kwargs = dict(in_channels=[16, 32, 64, 64], feat_channels=32, out_channels=32, num_layers=1,
                  num_heads=2, ffn_channels=32, num_groups=8, impl='pytorch')
    encoder_only = DeformablePixelDecoder(**kwargs).eval()
    whole = DeformablePixelDecoder(fp32_fpn=True, **kwargs).eval()
    whole.load_state_dict(encoder_only.state_dict())
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        mask_a, outs_a = encoder_only(feats)
        mask_b, outs_b = whole(feats)
    assert mask_a.dtype == torch.bfloat16 and mask_b.dtype == torch.float32
    assert all(o.dtype == torch.float32 for o in outs_b)
    with torch.no_grad():
        mask_fp32, _ = whole(feats)
    torch.testing.assert_close(mask_b, mask_fp32)  # autocast changes nothing then


def test_published_model_config_picks_the_reference_options():
    from vitamin_dense.engine.config import load_config
    model = load_config(PUBLISHED).model
    assert model.synonym_reduce == 'max'
    assert model.global_pos_embed == dict(size=1344)
    assert model.backbone.s32_mode == 'subsample'
    assert model.ensemble.ensemble_on_valid_mask is False
    assert model.head.pixel_decoder.fp32_encoder and model.head.pixel_decoder.fp32_fpn
    tiny = load_config(os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py'))
    assert tiny.model.global_pos_embed is None  # labelled cheaper setting: crops vary in size


def test_published_weight_decay_groups_are_fcclip_s():
    """FC-CLIP's build_optimizer: 0.05 everywhere but norms and nn.Embedding modules."""
    from mmengine.optim import build_optim_wrapper

    from vitamin_dense.engine.config import load_config
    from vitamin_dense.registry import MODELS, register_all_modules
    register_all_modules()
    cfg = load_config(PUBLISHED)
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    model_cfg['backbone'].update(model_name='ViTamin-Tiny', weights=None, train_stride=64,
                                 test_stride=32)
    model_cfg['text_encoder'].update(model_name='ViTamin-Tiny', weights=None, disk_cache=False)
    model_cfg['global_pos_embed'] = dict(size=128)
    model_cfg['head'].update(num_queries=4, num_decoder_layers=1)
    model = MODELS.build(model_cfg)
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper.to_dict())
    wrapper_cfg['type'] = 'OptimWrapper'  # AMP needs CUDA
    wrapper_cfg.pop('loss_scale', None)
    optimizer = build_optim_wrapper(model, wrapper_cfg).optimizer
    decay = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group['params']:
            decay[names[id(p)]] = group['weight_decay']
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith(('head.', 'global_pos_embed.')) for n in trainable)
    decayed = {
        'head.logit_scale', 'head.pixel_decoder.level_embed.weight', 'global_pos_embed.s4',
        'head.class_embed.layers.0.bias', 'head.pixel_decoder.mask_features.bias',
        'head.pixel_decoder.input_projs.0.0.bias', 'head.transformer_decoder.layers.0.linear1.bias',
        'head.transformer_decoder.layers.0.cross_attn.in_proj_bias',
        'head.transformer_decoder.layers.0.cross_attn.in_proj_weight'}
    not_decayed = {
        'head.transformer_decoder.query_feat.weight', 'head.transformer_decoder.query_embed.weight',
        'head.transformer_decoder.level_embed.weight', 'head.void_embedding.weight',
        'head.pixel_decoder.input_projs.0.1.weight', 'head.pixel_decoder.input_projs.0.1.bias',
        'head.transformer_decoder.layers.0.norm1.bias', 'head.transformer_decoder.decoder_norm.weight',
        'head.mask_pooling_proj.0.weight'}
    assert {n: decay[n] for n in decayed} == {n: 0.05 for n in decayed}
    assert {n: decay[n] for n in not_decayed} == {n: 0.0 for n in not_decayed}
    # every trainable parameter is one or the other by FC-CLIP's rule
    norms = {f'{m}.{p}' for m, mod in model.named_modules()
             if isinstance(mod, (torch.nn.LayerNorm, torch.nn.GroupNorm))
             for p, _ in mod.named_parameters(recurse=False)}
    embeddings = {f'{m}.weight' for m, mod in model.named_modules()
                  if isinstance(mod, torch.nn.Embedding)}
    embeddings.remove('head.pixel_decoder.level_embed.weight')  # a plain parameter in FC-CLIP
    for name in trainable:
        assert decay[name] == (0.0 if name in norms | embeddings else 0.05), name
