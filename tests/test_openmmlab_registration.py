"""Registration into mmdet's and mmseg's registries: each class where it belongs, a name
clash is an error, and register_all_modules makes our scope current."""
import pytest
import torch
from mmengine.registry import DefaultScope, init_default_scope

import vitamin_dense  # noqa: F401
from vitamin_dense.registry import (SCOPE, RegistryClashError, alias_into,
                                    register_all_modules, register_openmmlab_alias)

MMDET_ONLY = ('SimpleFeaturePyramid', 'LN2d', 'SlidingFViT', 'SlidingFViTAdapter',
              'FViTRoIHead', 'FViTBBoxHead')


def test_register_all_modules_makes_our_scope_current_whatever_was():
    init_default_scope('mmdet')  # e.g. what an mmdet inferencer leaves behind
    register_all_modules()
    assert DefaultScope.get_current_instance().scope_name == SCOPE
    init_default_scope('mmseg')
    register_all_modules(init_default_scope=False)
    assert DefaultScope.get_current_instance().scope_name == 'mmseg'
    register_all_modules()
    assert DefaultScope.get_current_instance().scope_name == SCOPE


def test_each_class_is_registered_where_it_belongs():
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMDET_CONSTRUCTORS
    from mmseg.registry import MODELS as MMSEG_MODELS
    from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMSEG_CONSTRUCTORS
    from vitamin_dense.registry import MODELS
    for name in MMDET_ONLY + ('ViTaminBackbone',):
        assert MMDET_MODELS.module_dict[name] is MODELS.module_dict[name], name
    assert MMSEG_MODELS.module_dict['ViTaminBackbone'] is MODELS.module_dict['ViTaminBackbone']
    for name in MMDET_ONLY:  # detection parts are not in mmseg's registry
        assert name not in MMSEG_MODELS.module_dict, name
        assert MMSEG_MODELS.get(name) is None, name
    for registry in (MMDET_CONSTRUCTORS, MMSEG_CONSTRUCTORS):
        assert 'ViTaminLayerDecayOptimizerConstructor' in registry.module_dict


def test_prefixed_names_reach_our_modules_from_another_scope():
    from mmcv.cnn import build_norm_layer
    from mmengine.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmseg'):
        neck = MODELS.build(dict(type='vitamin_dense.SimpleFeaturePyramid', in_channels=64,
                                 out_channels=16, norm='LN2d'))
        _, norm = build_norm_layer(dict(type='vitamin_dense.LN2d'), 16)
    assert type(norm).__name__ == 'LayerNorm2d'
    outs = neck((torch.randn(1, 64, 4, 6),))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]


class ResNet(torch.nn.Module):
    """Shares its name with mmdet's and mmseg's ResNet backbones."""


class Conv2d(torch.nn.Module):
    """Shares its name with the layer mmcv registers in MMEngine's root registry."""


@pytest.mark.parametrize('package', ['mmdet', 'mmseg'])
def test_a_name_clash_is_an_error(package):
    with pytest.raises(RegistryClashError) as info:
        register_openmmlab_alias(package)(ResNet)
    message = str(info.value)
    assert f"into {package}'s MODELS as 'ResNet'" in message
    assert f'{package}.models.backbones.resnet.ResNet' in message and '\n' not in message
    # A name the package falls back to (mmcv registers torch's Conv2d in MMEngine's root).
    with pytest.raises(RegistryClashError, match=r'already means torch\.nn\.modules\.conv\.Conv2d'):
        alias_into(Conv2d, package)
    from mmengine.registry import MODELS as ROOT
    assert ROOT.get(f'{package}.ResNet') is not ResNet  # nothing was replaced


def test_aliasing_is_idempotent_and_names_its_package():
    from vitamin_dense.backbones import ViTaminBackbone
    assert alias_into(ViTaminBackbone, 'mmdet')  # the same class again: fine
    with pytest.raises(ValueError, match='package'):
        register_openmmlab_alias()
    with pytest.raises(ValueError, match='mmpose'):
        alias_into(ViTaminBackbone, 'mmpose')


def test_api_builders_work_in_any_current_scope(tiny_model_name):
    """A demo or export after an mmdet tool (default scope 'mmdet') still builds our models."""
    from vitamin_dense.apis.detector import build_detector
    with DefaultScope.overwrite_default_scope('mmdet'):
        model, _ = build_detector(model=tiny_model_name, random_init=True)
        assert DefaultScope.get_current_instance().scope_name == 'mmdet'  # left as it was
    assert type(model).__name__ == 'OwlDetector'
