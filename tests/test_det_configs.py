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
    # one window layout in training and at test (tokens averaged over the same windows)
    assert bb['train_stride'] == bb['test_stride']
    crop = [t for t in cfg.train_dataloader.dataset.get('dataset', cfg.train_dataloader.dataset)
            .pipeline if t['type'].endswith('RandomCrop')][0]['crop_size']
    assert model_cfg['frame_size'] == crop[0] == crop[1]  # the box frame = the training canvas
    if 'synthetic' not in path:
        # OWL: both towers fine-tuned (image tower with its final norm), Adam without decay,
        # the text tower at a tenth of the image tower's learning rate
        assert bb['weights'] == 'datacomp1b' and bb['frozen'] is False
        assert bb['freeze_clip_head'] is False and model_cfg['freeze_text'] is False
        opt = cfg.optim_wrapper
        assert opt.optimizer.type == 'AdamW' and opt.optimizer.weight_decay == 0.0
        assert opt.optimizer.lr == 2e-5
        assert opt.paramwise_cfg.custom_keys['text_encoder']['lr_mult'] == 0.1
        cosine = [s for s in cfg.param_scheduler if s['type'] == 'CosineAnnealingLR'][0]
        assert cosine['eta_min'] == 0.0 and cosine['end'] == cfg.train_cfg.max_iters
        assert bb['model_name'] == model_cfg['text_encoder']['model_name']
        assert model_cfg['test_cfg']['nms_iou'] is None  # OWL's top-k, no NMS
        if 'ovcoco' in path:
            assert model_cfg['negative_vocabulary'] and model_cfg['num_negatives'] > 0
        lsj = [t for t in cfg.train_dataloader.dataset.get('dataset', cfg.train_dataloader.dataset)
               .pipeline if t['type'].endswith('RandomResize')][0]
        assert lsj['scale'] == (896, 896) and lsj['ratio_range'] == (0.1, 2.0)
        if 'ovlvis' in path:
            pack = cfg.train_dataloader.dataset.dataset.pipeline[-1]
            assert 'neg_labels' in pack['meta_keys'] and model_cfg['federated_loss']
            assert model_cfg['federated_negatives'] == 50
    else:
        assert model_cfg['freeze_text'] is True  # the cheap mode
    if os.path.basename(path).startswith(('owl_vitamin_s_', 'owl_vitamin_b_')):
        return  # the L recipe with another model name: built below for L
    # every argument is accepted: build the same model on the tiny random variant
    bb.update(model_name='ViTamin-Tiny', weights=None, train_stride=64, test_stride=64)
    model_cfg['text_encoder'].update(model_name='ViTamin-Tiny', weights=None, disk_cache=False)
    model_cfg['frame_size'] = 128
    model = MODELS.build(model_cfg)
    built = model.criterion._build()  # mmdet's assigner, costs and losses from the config
    assert type(built['assigner']).__name__ == 'HungarianAssigner'
    assert type(built['loss_cls']).__name__ == 'FocalLoss'
    model.set_vocabulary('circle,square')
    with torch.no_grad():
        out = model.eval()._forward(torch.zeros(1, 3, 64, 96))
    assert out['logits'].shape == (1, 8 * 8, 2)  # the 128 px square frame


def test_recipe_optimizer_trains_both_towers_at_owls_rates():
    """The L recipe's optimizer: image tower (fc_norm included) and heads at 2e-5, the text
    tower at 2e-6, no weight decay; the unused CLIP projection is not trained."""
    from mmengine.optim import build_optim_wrapper
    register_all_modules()
    cfg = load_config(os.path.join(ROOT, 'configs', 'ov_det', 'owl_vitamin_l_ovlvis.py'))
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    model_cfg['backbone'].update(model_name='ViTamin-Tiny', weights=None, train_stride=64,
                                 test_stride=64)
    model_cfg['text_encoder'].update(model_name='ViTamin-Tiny', weights=None,
                                     disk_cache=False)
    model = MODELS.build(model_cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lr_of = {id(p): g['lr'] for g in wrapper.optimizer.param_groups for p in g['params']}
    assert all(g['weight_decay'] == 0.0 for g in wrapper.optimizer.param_groups)
    trunk = model.backbone.trunk
    for module, lr in ((trunk.blocks[0], 2e-5), (trunk.fc_norm, 2e-5), (model.head, 2e-5),
                       (model.text_encoder.text, 2e-6)):
        params = list(module.parameters())
        assert params and all(lr_of.get(id(p)) == pytest.approx(lr) for p in params)
    assert not any(id(p) in lr_of for p in model.backbone.visual.head.parameters())


@pytest.mark.slow
def test_published_recipe_builds_at_full_size():
    """The real ViTamin-L-336 OWL detector (random weights: no download): widths and grid."""
    register_all_modules()
    cfg = load_config(os.path.join(ROOT, 'configs', 'ov_det', 'owl_vitamin_l_ovcoco.py'))
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    model_cfg['backbone']['weights'] = None
    model_cfg['text_encoder'].update(weights=None, disk_cache=False)
    model_cfg['frame_size'] = None  # the 896 px frame would run 9 windows of ViTamin-L here
    model = MODELS.build(model_cfg)
    bb = model.backbone
    assert (bb.model_name, bb.window_size, bb.channels['s16']) == ('ViTamin-L-336', 336, 1024)
    assert all(p.requires_grad for p in bb.trunk.parameters())
    model.set_vocabulary('cat,dog')
    with torch.no_grad():
        out = model.eval()._forward(torch.zeros(1, 3, 336, 448))
    assert out['logits'].shape == (1, 21 * 28, 2)      # one box per 16 px token
    assert out['boxes'].shape == (1, 21 * 28, 4) and out['grid_hw'] == (21, 28)
    assert out['objectness'].shape == (1, 21 * 28)
