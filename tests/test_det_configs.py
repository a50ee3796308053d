"""The OWL detection configs load, and their model / loss / preprocessor settings build."""
import copy
import glob
import os

import pytest
import torch

from vitamin_dense.backbones import check_stride, get_variant
from vitamin_dense.engine.config import load_config
from vitamin_dense.registry import MODELS, register_all_modules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'ov_det', 'owl_*.py')))


def test_all_recipes_present():
    names = {os.path.basename(c) for c in CONFIGS}
    for variant in ('l', 's', 'b'):
        for data in ('ovcoco', 'ovlvis'):
            assert f'owl_vitamin_{variant}_{data}.py' in names
    assert 'owl_vitamin_tiny_synthetic.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_builds_with_a_tiny_stand_in(path):
    register_all_modules()
    cfg = load_config(path)
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    assert model_cfg['type'] == 'OwlDetector'
    bb = model_cfg['backbone']
    window = get_variant(bb['model_name']).window_size
    for key in ('train_stride', 'test_stride'):
        check_stride(bb[key], window)
    assert any(h['type'] == 'VocabularyHook' for h in cfg.custom_hooks)
    if 'synthetic' not in path:
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
        assert bb['weights'] == 'datacomp1b' and bb['frozen'] is ('_ft' not in path)
        assert bb['model_name'] == model_cfg['text_encoder']['model_name']
        if 'ovcoco' in path:
            assert model_cfg['negative_vocabulary'] and model_cfg['num_negatives'] > 0
        lsj = [t for t in cfg.train_dataloader.dataset.get('dataset', cfg.train_dataloader.dataset)
               .pipeline if t['type'].endswith('RandomResize')][0]
        assert lsj['scale'] == (896, 896) and lsj['ratio_range'] == (0.1, 2.0)
        pad = model_cfg['data_preprocessor']['batch_augments'][0]
        assert pad['size'] == (896, 896)
        if 'ovlvis' in path:
            pack = cfg.train_dataloader.dataset.dataset.pipeline[-1]
            assert 'neg_labels' in pack['meta_keys'] and model_cfg['federated_loss']
    if os.path.basename(path).startswith(('owl_vitamin_s_', 'owl_vitamin_b_')) or '_ft' in path:
        return  # the L recipe with another model name: built below for L
    # every argument is accepted: build the same model on the tiny random variant
    bb.update(model_name='ViTamin-Tiny', weights=None, train_stride=64, test_stride=64)
    model_cfg['text_encoder'].update(model_name='ViTamin-Tiny', weights=None, disk_cache=False)
    model = MODELS.build(model_cfg)
    built = model.criterion._build()  # mmdet's assigner, costs and losses from the config
    assert type(built['assigner']).__name__ == 'HungarianAssigner'
    assert type(built['loss_cls']).__name__ == 'FocalLoss'
    model.set_vocabulary('circle,square')
    with torch.no_grad():
        out = model.eval()._forward(torch.zeros(1, 3, 64, 96))
    assert out['logits'].shape == (1, 4 * 6, 2)


def test_fine_tune_recipe_builds_its_layer_decay_optimizer():
    """The fine-tune recipe's optimizer: only the last blocks (and the heads) train."""
    from mmengine.optim import build_optim_wrapper
    register_all_modules()
    cfg = load_config(os.path.join(ROOT, 'configs', 'ov_det', 'owl_vitamin_l_ovcoco_ft.py'))
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    model_cfg['backbone'].update(model_name='ViTamin-Tiny-96', weights=None, train_stride=96,
                                 test_stride=96, trainable_blocks=1)
    model_cfg['text_encoder'].update(model_name='ViTamin-Tiny-96', weights=None,
                                     disk_cache=False)
    model = MODELS.build(model_cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    trained = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    blocks = model.backbone.trunk.blocks
    assert all(id(p) in trained for p in blocks[-1].parameters())
    assert not any(id(p) in trained for p in blocks[0].parameters())
    assert all(id(p) in trained for p in model.head.parameters())
    lrs = {g['lr'] for g in wrapper.optimizer.param_groups}
    assert len(lrs) > 1  # layer-wise decay


@pytest.mark.slow
def test_published_recipe_builds_at_full_size():
    """The real ViTamin-L-336 OWL detector (random weights: no download): widths and grid."""
    register_all_modules()
    cfg = load_config(os.path.join(ROOT, 'configs', 'ov_det', 'owl_vitamin_l_ovcoco.py'))
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    model_cfg['backbone']['weights'] = None
    model_cfg['text_encoder'].update(weights=None, disk_cache=False)
    model = MODELS.build(model_cfg)
    bb = model.backbone
    assert (bb.model_name, bb.window_size, bb.channels['s16']) == ('ViTamin-L-336', 336, 1024)
    assert not any(p.requires_grad for p in bb.parameters())
    model.set_vocabulary('cat,dog')
    with torch.no_grad():
        out = model.eval()._forward(torch.zeros(1, 3, 336, 448))
    assert out['logits'].shape == (1, 21 * 28, 2)      # one box per 16 px token
    assert out['boxes'].shape == (1, 21 * 28, 4) and out['grid_hw'] == (21, 28)
    assert out['objectness'].shape == (1, 21 * 28)
