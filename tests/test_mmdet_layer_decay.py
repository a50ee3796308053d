"""Layer-wise lr decay constructor: the lr and weight decay of every parameter."""
import re

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch import nn

import vitamin_dense  # noqa: F401  (registers everything)
from vitamin_dense.backbones import ViTaminBackbone
from vitamin_dense.engine import ViTaminLayerDecayOptimizerConstructor
from vitamin_dense.errors import ConfigError

BASE_LR, BASE_WD, RATE = 1e-3, 0.05, 0.5


class _Model(nn.Module):
    def __init__(self, **backbone_kwargs):
        super().__init__()
        self.backbone = ViTaminBackbone('ViTamin-Tiny', None, **backbone_kwargs)
        self.neck = nn.Conv2d(64, 8, 1)
        self.head = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
        self.logit_scale = nn.Parameter(torch.tensor(1.0))


@pytest.fixture(scope='module')
def model():
    return _Model(frozen=False)


def _expected_layer(name: str) -> int:
    """Layer of a parameter written out by hand for ViTamin-Tiny (2 blocks, 5 layers)."""
    if not name.startswith('backbone.'):
        return 5
    if re.search(r'patch_embed\.backbone\.(stem|stages\.0)\.', name):
        return 0
    if 'patch_embed' in name or 'pos_embed' in name:
        return 1
    block = re.search(r'trunk\.blocks\.(\d)\.', name)
    if block:
        return 2 + int(block.group(1))
    return 4  # final norm / fc_norm / proj


def _cfg(**paramwise):
    # Prefixed: found whatever the default scope (the tests below also use the bare name).
    return dict(type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD),
                constructor='vitamin_dense.ViTaminLayerDecayOptimizerConstructor',
                paramwise_cfg=dict(decay_rate=RATE, **paramwise))


def _by_name(optim_wrapper):
    out = {}
    for group in optim_wrapper.optimizer.param_groups:
        for name in group['param_names']:
            out[name] = group
    return out


@pytest.mark.parametrize('scope', ['vitamin_dense', 'mmdet', 'mmseg'])
def test_each_parameter_gets_its_layer_lr(model, scope):
    cfg = dict(_cfg(), constructor='ViTaminLayerDecayOptimizerConstructor')
    with DefaultScope.overwrite_default_scope(scope):
        wrapper = build_optim_wrapper(model, cfg)
    groups = _by_name(wrapper)
    params = dict(model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert set(groups) == trainable
    # Frozen CLIP head (freeze_clip_head=True) never reaches the optimizer.
    assert 'backbone.visual.head.proj.weight' not in groups
    assert 'backbone.visual.trunk.fc_norm.weight' not in groups
    for name in trainable:
        group = groups[name]
        layer = _expected_layer(name)
        assert group['layer_id'] == layer, name
        assert group['lr'] == pytest.approx(BASE_LR * RATE ** (5 - layer)), name
        no_decay = params[name].ndim <= 1 or 'pos_embed' in name or name == 'logit_scale'
        assert group['weight_decay'] == (0.0 if no_decay else BASE_WD), name
    assert groups['backbone.visual.trunk.blocks.1.attn.qkv.weight']['lr'] == pytest.approx(
        BASE_LR * RATE ** 2)
    assert groups['backbone.visual.trunk.blocks.0.norm1.weight']['weight_decay'] == 0.0
    assert groups['head.0.weight']['lr'] == pytest.approx(BASE_LR)
    # Every tensor appears once.
    seen = [id(p) for g in wrapper.optimizer.param_groups for p in g['params']]
    assert len(seen) == len(set(seen)) == len(trainable)


def test_frozen_backbone_leaves_only_heads():
    model = _Model(frozen=True)
    wrapper = build_optim_wrapper(model, _cfg())
    names = set(_by_name(wrapper))
    assert names == {'neck.weight', 'neck.bias', 'head.0.weight', 'head.0.bias', 'head.1.weight',
                     'head.1.bias', 'logit_scale'}


def test_custom_keys_and_training_step(model):
    wrapper = build_optim_wrapper(model, _cfg(custom_keys={'neck': dict(lr_mult=0.1,
                                                                        decay_mult=2.0)}))
    groups = _by_name(wrapper)
    assert groups['neck.weight']['lr'] == pytest.approx(BASE_LR * 0.1)
    assert groups['neck.weight']['weight_decay'] == pytest.approx(2 * BASE_WD)
    assert groups['neck.bias']['weight_decay'] == 0.0
    x = torch.randn(1, 3, 64, 64)
    before = model.backbone.visual.trunk.blocks[0].attn.qkv.weight.detach().clone()
    loss = model.neck(model.backbone(x)['s16']).square().mean()
    wrapper.update_params(loss)
    assert not torch.equal(before, model.backbone.visual.trunk.blocks[0].attn.qkv.weight)


def test_errors():
    with pytest.raises(ConfigError, match='decay_rate'):
        ViTaminLayerDecayOptimizerConstructor(
            dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)), dict())
    with pytest.raises(ConfigError, match=r'in \(0, 1\]'):
        build_optim_wrapper(nn.Linear(2, 2), dict(_cfg(), paramwise_cfg=dict(decay_rate=1.5)))
    with pytest.raises(ConfigError, match='unknown paramwise_cfg'):
        build_optim_wrapper(nn.Linear(2, 2), _cfg(layer_decay_rate=0.9))
    with pytest.raises(ConfigError, match='no ViTaminBackbone'):
        build_optim_wrapper(nn.Linear(2, 2), _cfg())
