"""ViTaminBackbone against its references (timm's ViTamin, open_clip's CLIP), the variant
table, weight loading, and the frozen / fine-tune modes."""
import os
import pickle

import open_clip
import pytest
import timm
import torch

from vitamin_dense.backbones import (TINY_VARIANTS, ViTaminBackbone, get_variant,
                                     list_variants)
from vitamin_dense.errors import ConfigError, WeightsError

TIMM_NAMES = {'ViTamin-Tiny': 'vitamin_tiny_64', 'ViTamin-S': 'vitamin_small_224'}


@pytest.fixture(scope='module')
def backbones():
    torch.manual_seed(0)
    return {name: ViTaminBackbone(name, None) for name in TIMM_NAMES}


def _window_batch(backbone, n=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    w = backbone.window_size
    return torch.randn(n, 3, w, w, generator=g)


# ------------------------------------------------------------------ references
@pytest.mark.parametrize('name', sorted(TIMM_NAMES))
def test_trunk_features_equal_timm_forward(backbones, name):
    """s4 / s8 equal timm's MBConv stage outputs; s16 equals timm's forward_features."""
    backbone = backbones[name]
    with torch.device('meta'):  # skip random init: every tensor is replaced below
        ref = timm.create_model(TIMM_NAMES[name], num_classes=0)
    ref.load_state_dict(backbone.trunk.state_dict(), strict=True, assign=True)
    ref.eval()
    assert not any(t.is_meta for t in list(ref.parameters()) + list(ref.buffers()))
    captured = {}
    stages = ref.patch_embed.backbone.stages
    stages[0].register_forward_hook(lambda m, i, o: captured.__setitem__('s4', o))
    stages[1].register_forward_hook(lambda m, i, o: captured.__setitem__('s8', o))
    x = _window_batch(backbone, n=2 if name == 'ViTamin-Tiny' else 1)
    with torch.no_grad():
        ours = backbone.forward_window(x)
        tokens = ref.forward_features(x)
    n, d, h, w = ours['s16'].shape
    assert (h, w) == (backbone.window_size // 16,) * 2
    assert tokens.shape == (n, h * w, d)
    assert tokens.std() > 0.1  # a real signal, not zeros
    torch.testing.assert_close(ours['s16'].flatten(2).transpose(1, 2), tokens, atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(ours['s4'], captured['s4'], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours['s8'], captured['s8'], atol=1e-5, rtol=1e-5)
    assert ours['s4'].shape[-1] == backbone.window_size // 4
    assert ours['s8'].shape[-1] == backbone.window_size // 8


@pytest.mark.parametrize('name', sorted(TIMM_NAMES))
def test_all_ones_mask_pool_reproduces_open_clip_encode_image(backbones, name):
    backbone = backbones[name]
    ref = open_clip.create_model(name).eval()
    ref.visual.load_state_dict(backbone.visual.state_dict(), strict=True)
    n = 3 if name == 'ViTamin-Tiny' else 1
    x = _window_batch(backbone, n=n)
    with torch.no_grad():
        expected = ref.encode_image(x)
        s16 = backbone(x)['s16']
        ones_tokens = torch.ones(n, 1, *s16.shape[-2:])
        ones_pixels = torch.ones(n, 1, backbone.window_size, backbone.window_size)
        pooled = backbone.mask_pool(ones_tokens, s16)[:, 0]
        pooled_hi_res = backbone.mask_pool(ones_pixels, s16)[:, 0]
        whole = backbone.encode_image(x)
    assert expected.shape == (n, backbone.clip_dim)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(pooled_hi_res, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(whole, expected, atol=1e-5, rtol=1e-4)


def test_mask_pool_of_a_region_pools_tokens_then_applies_the_clip_head(backbones):
    backbone = backbones['ViTamin-Tiny']
    ref = open_clip.create_model('ViTamin-Tiny').eval()
    ref.visual.load_state_dict(backbone.visual.state_dict())
    x = _window_batch(backbone, n=1)
    with torch.no_grad():
        s16 = backbone(x)['s16']
        mask = torch.zeros(1, 2, *s16.shape[-2:])
        mask[0, 0, :2, :3] = 1
        mask[0, 1, 1:, 1:] = 0.5
        pooled = backbone.mask_pool(mask, s16)
        tokens = s16.flatten(2).transpose(1, 2)[0]
        for q in range(2):
            m = mask[0, q].flatten()
            mean = (tokens * m[:, None]).sum(0) / m.sum()
            expected = ref.visual.head(ref.visual.trunk.fc_norm(mean))
            torch.testing.assert_close(pooled[0, q], expected, atol=1e-5, rtol=1e-4)
        # The dense CLIP map is the same head applied per token.
        clip = backbone(x)['clip'].flatten(2).transpose(1, 2)[0]
        torch.testing.assert_close(clip, ref.visual.head(ref.visual.trunk.fc_norm(tokens)),
                                   atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------- variant table
EXPECTED_WINDOWS = {
    'ViTamin-S': 224, 'ViTamin-S-LTT': 224, 'ViTamin-B': 224, 'ViTamin-B-LTT': 224,
    'ViTamin-L': 224, 'ViTamin-L-256': 256, 'ViTamin-L-336': 336, 'ViTamin-L-384': 384,
    'ViTamin-L2': 224, 'ViTamin-L2-256': 256, 'ViTamin-L2-336': 336, 'ViTamin-L2-384': 384,
    'ViTamin-XL-256': 256, 'ViTamin-XL-336': 336, 'ViTamin-XL-384': 384,
    'ViTamin-Tiny': 64, 'ViTamin-Tiny-96': 96,
}


def test_every_open_clip_vitamin_name_has_a_buildable_config():
    names = [n for n in open_clip.list_models() if n.startswith('ViTamin-')]
    assert set(EXPECTED_WINDOWS) <= set(names)
    assert set(names) == set(list_variants())
    for name in names:
        variant = get_variant(name)
        cfg = open_clip.get_model_config(name)
        # The image tower resolves to a registered timm constructor (no instantiation:
        # L and XL are too big for tests).
        assert timm.is_model(cfg['vision_cfg']['timm_model_name']), name
        assert variant.embed_dim == cfg['embed_dim']
        if name in EXPECTED_WINDOWS:
            assert variant.window_size == EXPECTED_WINDOWS[name], name
        if name not in TINY_VARIANTS:
            assert 'datacomp1b' in variant.pretrained_tags, name


def test_xl_384_is_forced_to_384():
    assert open_clip.get_model_config('ViTamin-XL-384')['vision_cfg']['image_size'] == 256
    variant = get_variant('ViTamin-XL-384')
    assert variant.window_size == 384 and variant.force_image_size == 384
    assert get_variant('ViTamin-XL-256').force_image_size is None


def test_unknown_variant_is_a_clear_config_error():
    with pytest.raises(ConfigError, match="unknown ViTamin model 'ViTamin-M'"):
        get_variant('ViTamin-M')
    with pytest.raises(ConfigError, match='Did you mean'):
        ViTaminBackbone('vitamin-l', None)


def test_output_shape_and_channels(backbones):
    backbone = backbones['ViTamin-Tiny']
    shapes = backbone.output_shape()
    assert {k: (v.channels, v.stride) for k, v in shapes.items()} == {
        's4': (16, 4), 's8': (32, 8), 's16': (64, 16), 's32': (64, 32), 'clip': (64, 16)}
    assert backbone.out_channels == [16, 32, 64, 64]
    assert backbone.out_strides == [4, 8, 16, 32]


# ---------------------------------------------------------------------- weights
@pytest.fixture(scope='module')
def reference_clip():
    torch.manual_seed(123)
    return open_clip.create_model('ViTamin-Tiny').eval()


def _image():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize('suffix', ['.safetensors', '.pt'])
def test_full_open_clip_checkpoint_loads_and_reproduces_outputs(tmp_path, reference_clip,
                                                                 suffix):
    from vitamin_dense.text import TextClassifier
    path = str(tmp_path / f'open_clip_model{suffix}')
    state = {k: v.contiguous() for k, v in reference_clip.state_dict().items()}
    if suffix == '.safetensors':
        from safetensors.torch import save_file
        save_file(state, path)
    else:
        torch.save(state, path)
    backbone = ViTaminBackbone('ViTamin-Tiny', path)
    x = _image()
    with torch.no_grad():
        torch.testing.assert_close(backbone.encode_image(x), reference_clip.encode_image(x),
                                   atol=1e-5, rtol=1e-4)
        text = TextClassifier('ViTamin-Tiny', path, templates='single', disk_cache=False)
        emb = text.encode('cat,dog')
        ref = reference_clip.encode_text(open_clip.get_tokenizer('ViTamin-Tiny')(
            ['a photo of a cat.', 'a photo of a dog.']))
        ref = ref / ref.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(emb, ref, atol=1e-5, rtol=1e-4)
    assert text.logit_scale.item() == pytest.approx(reference_clip.logit_scale.item())


def test_visual_only_state_dict_loads(tmp_path, reference_clip):
    path = str(tmp_path / 'visual.pt')
    torch.save(reference_clip.visual.state_dict(), path)
    backbone = ViTaminBackbone('ViTamin-Tiny', path)
    x = _image()
    with torch.no_grad():
        torch.testing.assert_close(backbone.encode_image(x), reference_clip.encode_image(x),
                                   atol=1e-5, rtol=1e-4)


_UNPICKLED = []


def _mark_unpickled():
    _UNPICKLED.append(True)
    return 'payload'


class _Payload:
    def __reduce__(self):
        return (_mark_unpickled, ())


def test_pickled_objects_are_refused(tmp_path, reference_clip):
    path = str(tmp_path / 'evil.pt')
    torch.save({'state_dict': reference_clip.state_dict(), 'extra': _Payload()}, path)
    with pytest.raises(WeightsError, match='pickled') as info:
        ViTaminBackbone('ViTamin-Tiny', path)
    assert '\n' not in str(info.value)
    assert not _UNPICKLED  # the object's code never ran
    assert isinstance(pickle.loads(pickle.dumps(_Payload())), str)  # it would have


def test_checkpoint_of_another_variant_is_a_one_line_error(tmp_path):
    other = open_clip.create_model('ViTamin-Tiny-96')
    path = str(tmp_path / 'tiny96.safetensors')
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, path)
    with pytest.raises(WeightsError) as info:
        ViTaminBackbone('ViTamin-Tiny', path)
    message = str(info.value)
    assert '\n' not in message
    assert 'do not fit ViTamin-Tiny' in message and 'mis-shaped' in message
    assert '--model' in message


def test_missing_file_and_corrupt_file_are_one_line_errors(tmp_path):
    missing = str(tmp_path / 'nope.safetensors')
    with pytest.raises(WeightsError) as info:
        ViTaminBackbone('ViTamin-Tiny', missing)
    assert '\n' not in str(info.value) and '--weights' in str(info.value)
    assert 'nope.safetensors' in str(info.value)
    corrupt = tmp_path / 'corrupt.safetensors'
    corrupt.write_bytes(b'not a safetensors file at all')
    with pytest.raises(WeightsError, match='cannot read weights file') as info:
        ViTaminBackbone('ViTamin-Tiny', str(corrupt))
    assert '\n' not in str(info.value)


def test_offline_pretrained_tag_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    assert os.environ['HF_HUB_OFFLINE'] == '1'
    with pytest.raises(WeightsError) as info:
        ViTaminBackbone('ViTamin-S', 'datacomp1b', cache_dir=str(tmp_path))
    message = str(info.value)
    assert '\n' not in message
    assert "'datacomp1b'" in message and '--weights' in message


def _fake_hub(monkeypatch, cached=None):
    """hf_hub_download stand-in: serves ``cached`` from the 'cache', records network calls."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError
    calls = []

    def fake(repo, filename, cache_dir=None, local_files_only=False, **kw):
        if local_files_only:
            if cached and filename == os.path.basename(cached):
                return cached
            raise LocalEntryNotFoundError('not cached')
        calls.append((repo, filename))
        raise OSError('network')

    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', fake)
    return calls


def test_unreachable_hub_fails_fast_without_network_retries(monkeypatch):
    """No HF_HUB_OFFLINE, no DNS: one line at once, not half a minute of retries."""
    import socket

    from huggingface_hub import constants

    from vitamin_dense.backbones import clip_loader
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, 'Name or service not known')

    monkeypatch.setattr(socket, 'getaddrinfo', no_dns)
    calls = _fake_hub(monkeypatch)
    assert not clip_loader.hub_reachable()
    with pytest.raises(WeightsError, match='cannot be reached') as info:
        clip_loader.resolve_weights_file('ViTamin-S', 'datacomp1b')
    assert calls == [] and '\n' not in str(info.value) and '--weights' in str(info.value)


def test_cached_hub_weights_need_no_network(tmp_path, monkeypatch):
    from vitamin_dense.backbones import clip_loader
    cached = tmp_path / 'open_clip_model.safetensors'
    cached.write_bytes(b'')
    calls = _fake_hub(monkeypatch, cached=str(cached))
    monkeypatch.setattr(clip_loader, 'hub_reachable', lambda: pytest.fail('network checked'))
    assert clip_loader.resolve_weights_file('ViTamin-S', 'hf-hub:org/repo') == str(cached)
    assert calls == []


# ------------------------------------------------------------ frozen / fine-tune
def test_frozen_mode_has_no_grads_and_stays_in_eval():
    backbone = ViTaminBackbone('ViTamin-Tiny', None)
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert backbone.training
    assert not any(m.training for m in backbone.visual.modules())
    x = torch.randn(1, 3, 64, 96, requires_grad=True)
    out = backbone(x)
    assert not any(v.requires_grad for v in out.values())


def test_fine_tune_all_blocks_keeps_clip_head_frozen_by_default():
    backbone = ViTaminBackbone('ViTamin-Tiny', None, frozen=False)
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert any(n.startswith('visual.trunk.patch_embed') for n in trainable)
    assert any(n.startswith('visual.trunk.blocks.0') for n in trainable)
    assert not any('fc_norm' in n or n.startswith('visual.head') for n in trainable)
    backbone.train()
    assert backbone.visual.training
    free_head = ViTaminBackbone('ViTamin-Tiny', None, frozen=False, freeze_clip_head=False)
    assert all(p.requires_grad for p in free_head.parameters())


def test_trainable_blocks_trains_only_the_last_blocks():
    backbone = ViTaminBackbone('ViTamin-Tiny', None, frozen=False, trainable_blocks=1)
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(('visual.trunk.blocks.1.', 'visual.trunk.norm.'))
                             for n in trainable)
    out = backbone(torch.randn(1, 3, 64, 64))
    out['s16'].square().mean().backward()
    for name, p in backbone.named_parameters():
        if name.startswith('visual.trunk.blocks.1.'):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    with pytest.raises(ConfigError, match='trainable_blocks'):
        ViTaminBackbone('ViTamin-Tiny', None, frozen=False, trainable_blocks=3)


def test_init_weights_keeps_the_loaded_weights():
    backbone = ViTaminBackbone('ViTamin-Tiny', None)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    backbone.init_weights()
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


def test_every_window_adds_the_trunks_position_embedding():
    """Each sliding window gets the trunk's own learned position embedding (the
    reference's ``trunk._pos_embed`` per window; kept as is, issue 9 point 8): a
    stitched map equals timm's ``forward_features`` of each window, which adds
    ``pos_embed``, and changes when that embedding does."""
    torch.manual_seed(0)
    backbone = ViTaminBackbone('ViTamin-Tiny', None, out_levels=('s16',), train_stride=64,
                               test_stride=64).eval()
    trunk = backbone.trunk
    assert trunk.pos_embed is not None and trunk.pos_embed.shape[1] == (64 // 16) ** 2
    with torch.no_grad():
        trunk.pos_embed.normal_(std=2.0)  # large enough to matter
    g = torch.Generator().manual_seed(3)
    image = torch.randn(1, 3, 64, 128, generator=g)  # two windows side by side
    with torch.no_grad():
        stitched = backbone(image)['s16']
        for k in range(2):
            window = image[..., 64 * k:64 * (k + 1)]
            tokens = trunk.forward_features(window)  # timm: patch embed + pos_embed + blocks
            torch.testing.assert_close(stitched[..., 4 * k:4 * (k + 1)].flatten(2).transpose(1, 2),
                                       tokens, atol=1e-5, rtol=1e-5)
        trunk.pos_embed.zero_()
        without = backbone(image)['s16']
    assert (stitched - without).abs().max() > 0.1
