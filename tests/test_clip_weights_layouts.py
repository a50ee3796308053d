"""The weights loader accepts every state-dict layout open_clip's ``load_checkpoint`` (and, for
the image tower, timm's checkpoint filter) converts for ViTamin, with the same result.

Each layout is made from the tiny model's own state dict; the reference is what open_clip's
``load_checkpoint`` (or timm's ``create_model(pretrained=True)``) makes of the same file.
"""
from collections import OrderedDict

import open_clip
import pytest
import timm
import torch

from vitamin_dense.backbones import ViTaminBackbone
from vitamin_dense.backbones.clip_loader import create_vitamin_clip
from vitamin_dense.errors import WeightsError

NAME = 'ViTamin-Tiny'


@pytest.fixture(scope='module')
def source():
    torch.manual_seed(7)
    model = open_clip.create_model(NAME).eval()
    with torch.no_grad():
        model.logit_scale.fill_(3.0)
    return model


def _state(model):
    return OrderedDict((k, v.detach().clone().contiguous()) for k, v in model.state_dict().items())


def _old_text_layout(state):
    """The pre-``custom_text`` CLIP layout: the text tower at the top level."""
    return OrderedDict((k[len('text.'):] if k.startswith('text.') else k, v)
                       for k, v in state.items())


def _open_clip_reference(path):
    ref = open_clip.create_model(NAME).eval()
    open_clip.load_checkpoint(ref, path, strict=True, weights_only=True)
    return ref


def _assert_same_weights(ours, ref):
    ours, ref = ours.state_dict(), ref.state_dict()
    assert ours.keys() == ref.keys()
    for key in ref:
        torch.testing.assert_close(ours[key], ref[key], rtol=0, atol=0, msg=key)


LAYOUTS = {
    'bare': lambda s: s,
    'state_dict wrapper + module. prefix (open_clip training checkpoint)':
        lambda s: {'epoch': 3, 'name': 'run', 'state_dict': OrderedDict(
            ('module.' + k, v) for k, v in s.items())},
    'old CLIP text layout': _old_text_layout,
    '1-d logit_scale': lambda s: OrderedDict(s, logit_scale=s['logit_scale'].reshape(1)),
    'shorter text context (64 positions)': lambda s: OrderedDict(
        s, **{'text.positional_embedding': s['text.positional_embedding'][:64].clone()}),
}


@pytest.mark.parametrize('layout', list(LAYOUTS), ids=list(LAYOUTS))
def test_open_clip_layouts_load_as_open_clip_loads_them(tmp_path, source, layout):
    path = str(tmp_path / 'weights.pt')
    torch.save(LAYOUTS[layout](_state(source)), path)
    ref = _open_clip_reference(path)
    model, _ = create_vitamin_clip(NAME, path, require_text=True)
    _assert_same_weights(model, ref)
    if 'text context' not in layout:
        _assert_same_weights(model, source)  # a pure re-layout: the weights are the source's


def _timm_from_open_clip_file(open_clip_file, **kwargs):
    """timm's own ViTamin built from an open_clip file through timm's checkpoint filter."""
    return timm.create_model('vitamin_tiny_64', pretrained=True, num_classes=64,
                             pretrained_cfg_overlay=dict(file=open_clip_file, num_classes=64),
                             **kwargs).eval()


def test_timm_layout_loads_and_reproduces_encode_image(tmp_path, source):
    from safetensors.torch import save_file
    open_clip_file = str(tmp_path / 'open_clip.safetensors')
    save_file(_state(source), open_clip_file)
    timm_model = _timm_from_open_clip_file(open_clip_file)
    assert 'head.weight' in timm_model.state_dict() and 'pos_embed' in timm_model.state_dict()
    timm_file = str(tmp_path / 'timm_vitamin.pth')
    torch.save(timm_model.state_dict(), timm_file)
    backbone = ViTaminBackbone(NAME, timm_file)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(backbone.encode_image(x), source.encode_image(x),
                                   atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(backbone.encode_image(x), timm_model(x), atol=1e-5, rtol=1e-4)


def test_pos_embed_of_another_grid_is_resampled_as_timm_does(tmp_path, source):
    """A 6x6-token position embedding (a 96 px pretraining size) into the 4x4 grid."""
    state = _state(source)
    state['visual.trunk.pos_embed'] = torch.randn(1, 36, 64, generator=torch.Generator()
                                                  .manual_seed(1))
    path = str(tmp_path / 'pos96.pt')
    torch.save(state, path)
    model, _ = create_vitamin_clip(NAME, path)
    # timm's checkpoint filter on the same file (an open_clip layout it recognises)
    timm_model = _timm_from_open_clip_file(path)
    torch.testing.assert_close(model.visual.trunk.pos_embed, timm_model.pos_embed,
                               rtol=0, atol=0)
    assert model.visual.trunk.pos_embed.shape == (1, 16, 64)


def test_image_tower_only_weights_are_refused_by_the_text_encoder(tmp_path, source):
    from vitamin_dense.text import TextClassifier
    path = str(tmp_path / 'visual.pt')
    torch.save(source.visual.state_dict(), path)
    with pytest.raises(WeightsError, match='only the image tower') as info:
        TextClassifier(NAME, path, templates='single', disk_cache=False)
    assert '\n' not in str(info.value)


def test_non_zero_timm_head_bias_is_a_one_line_error(tmp_path, source):
    from safetensors.torch import save_file
    open_clip_file = str(tmp_path / 'open_clip.safetensors')
    save_file(_state(source), open_clip_file)
    state = _timm_from_open_clip_file(open_clip_file).state_dict()
    state['head.bias'] = torch.ones_like(state['head.bias'])
    path = str(tmp_path / 'timm_biased.pth')
    torch.save(state, path)
    with pytest.raises(WeightsError, match='non-zero bias') as info:
        ViTaminBackbone(NAME, path)
    assert '\n' not in str(info.value)
