"""The open-vocabulary segmentation configs: they load, every ``type`` they name
resolves in its registry, the published recipe says what the paper did, and a
typo ends as one line.
"""
import glob
import os
import warnings

import pytest

from vitamin_dense.engine.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEG_CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'ov_seg', '**', '*.py'),
                               recursive=True))


def _registry_for(path: tuple):
    """Registry that builds the dict at ``path`` (keys from the config root)."""
    from vitamin_dense import registry as R
    head = path[0]
    if head == 'model' or (len(path) > 1 and path[-1] in ('data_preprocessor',)):
        return R.MODELS
    if 'pipeline' in path:
        return R.TRANSFORMS
    if path[-1] in ('sampler',):
        return R.DATA_SAMPLERS
    if path[-1] == 'batch_sampler':
        return R.DATA_SAMPLERS
    if 'dataset' in path:
        return R.DATASETS
    if head in ('val_evaluator', 'test_evaluator'):
        return R.METRICS
    if head in ('default_hooks', 'custom_hooks'):
        return R.HOOKS
    if head == 'param_scheduler':
        return R.PARAM_SCHEDULERS
    if head == 'optim_wrapper':
        return R.OPTIMIZERS if path[-1] == 'optimizer' else R.OPTIM_WRAPPERS
    if head in ('train_cfg', 'val_cfg', 'test_cfg'):
        return R.LOOPS
    if head in ('vis_backends',):
        return R.VISBACKENDS
    if head == 'visualizer':
        return R.VISUALIZERS
    return None


def _typed_dicts(node, path=()):
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield path, node['type']
        for key, value in node.items():
            yield from _typed_dicts(value, path + (key,))
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _typed_dicts(value, path)


def test_every_seg_config_loads_and_names_registered_types():
    import vitamin_dense  # noqa: F401  (registers everything)
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance('test_seg_configs', scope_name='vitamin_dense')
    checked = 0
    for path in SEG_CONFIGS:
        cfg = load_config(path)
        if cfg.model.type != 'FCCLIPSegmentor':  # e.g. the training-free baseline's configs
            continue
        checked += 1
        assert any(h['type'] == 'VocabularyHook' for h in cfg.custom_hooks), path
        assert 'test_dataloader' in cfg and 'test_evaluator' in cfg, path
        for where, type_name in _typed_dicts(cfg.to_dict()):
            if where and where[-1] in ('backbone', 'head', 'text_encoder', 'criterion'):
                registry = _registry_for(('model',))
            elif where and where[-1] == 'assigner' or 'match_costs' in where:
                continue  # mmdet task utils, built in mmdet's scope (see MaskFormerCriterion)
            else:
                registry = _registry_for(where)
            if where and where[0] == 'optim_wrapper' and where[-1] != 'optimizer':
                if type_name.endswith('Constructor'):
                    registry = None
            if registry is None:
                continue
            assert registry.get(type_name) is not None, f'{path}: {where} type {type_name!r}'
    assert checked >= 14  # L, S, B, XL, tiny and nine zero-shot evaluations


def test_published_recipe_values():
    cfg = load_config(os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_l_coco.py'))
    bb = cfg.model.backbone
    assert (bb.model_name, bb.weights, bb.frozen) == ('ViTamin-L-336', 'datacomp1b', True)
    assert (bb.train_stride, bb.test_stride) == (112, 112)  # as the reference ran (see config)
    assert cfg.model.head.num_queries == 250 and cfg.model.head.num_decoder_layers == 9
    assert cfg.model.head.hidden_dim == 256
    assert (cfg.model.ensemble.alpha, cfg.model.ensemble.beta) == (0.45, 0.7)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert (cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay) == \
        (1e-4, 0.05)
    assert cfg.train_cfg.max_iters == 368750
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 16
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'mmdet.RandomCrop']
    assert tuple(crop[0]['crop_size']) == (1344, 1344)
    resize = [t for t in cfg.train_dataloader.dataset.pipeline
              if t['type'] == 'mmdet.RandomResize'][0]
    assert tuple(resize['ratio_range']) == (0.1, 2.0)
    assert cfg.val_dataloader.dataset.type == 'OpenVocabADE20KPanopticDataset'
    for name, model in (('s', 'ViTamin-S'), ('b', 'ViTamin-B'), ('xl', 'ViTamin-XL-336')):
        other = load_config(os.path.join(ROOT, 'configs', 'ov_seg', f'vitamin_{name}_coco.py'))
        assert other.model.backbone.model_name == model
        assert other.train_cfg.max_iters == 368750


def test_tiny_config_typo_is_one_line(capsys, tmp_path, monkeypatch):
    import importlib.util
    import sys
    spec = importlib.util.spec_from_file_location('train_tool', os.path.join(ROOT, 'tools',
                                                                            'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from vitamin_dense.utils.cli import run_cli
    config = os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py')
    for options, expected in (
            (['model.head.num_querys=4'], 'num_querys'),
            (['model.ensemble.alpa=0.3'], 'alpa'),
            (['model.hed.num_queries=4'], "no 'model.hed'")):
        monkeypatch.setattr(sys, 'argv', ['train.py', config, '--work-dir', str(tmp_path),
                                          '--cfg-options', *options])
        with pytest.raises(SystemExit) as exc, warnings.catch_warnings():
            # repeated runners in one process and second warn about reused names
            warnings.simplefilter('ignore')
            run_cli(tool.main)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        # (other tests' loggers may have left handlers that write noise here: judge our line)
        errors = [line for line in err.splitlines() if line.startswith('error:')]
        assert len(errors) == 1 and expected in errors[0], err


def _fcclip_configs():
    return [p for p in SEG_CONFIGS if load_config(p).model.type == 'FCCLIPSegmentor']


@pytest.mark.parametrize('path', _fcclip_configs(), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_fcclip_config_builds_trains_and_predicts_with_a_tiny_stand_in(path):
    """Every argument of every FC-CLIP config is accepted: the config's own head,
    criterion (mmdet's matcher and losses), ensemble and test settings, on the
    tiny random ViTamin instead of the real one (no weights here)."""
    import copy

    import torch
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData

    from vitamin_dense.registry import MODELS, register_all_modules
    register_all_modules()
    model_cfg = copy.deepcopy(load_config(path).model.to_dict())
    model_cfg['backbone'].update(model_name='ViTamin-Tiny', weights=None, train_stride=64,
                                 test_stride=32)
    model_cfg.setdefault('text_encoder', {}).update(model_name='ViTamin-Tiny', weights=None,
                                                    disk_cache=False)
    model_cfg['data_preprocessor'].pop('batch_pad_size', None)  # 1344 px crops: not here
    model_cfg['data_preprocessor'].pop('pad_to_size', None)  # 1344 px input: not here
    if model_cfg.get('global_pos_embed'):  # learned for 1344 px inputs: resized to these
        model_cfg['global_pos_embed']['interpolate'] = True
    model = MODELS.build(model_cfg)
    model.set_vocabulary('circle; square; sky', 'train', thing_classes=['circle', 'square'])
    h, w = 64, 96
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
    mask = torch.zeros(1, h, w, dtype=torch.uint8)
    mask[0, 8:30, 10:40] = 1
    sample.gt_instances = InstanceData(labels=torch.tensor([0]),
                                       masks=BitmapMasks(mask.numpy(), h, w))
    sample.gt_sem_seg = PixelData(sem_seg=torch.where(mask.bool(), 0, 2).long())
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
    data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), training=True)
    model.train()
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v).all() for v in losses.values())
    model.eval()
    model.set_vocabulary('circle; square; sky; grass', 'test', thing_classes=['circle', 'square'])
    data = model.data_preprocessor(dict(inputs=[image], data_samples=[DetDataSample(
        metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))]), training=False)
    with torch.no_grad():
        out = model(**data, mode='predict')[0]
    assert out.pred_sem_seg.sem_seg.shape == (1, h, w)
    assert int(out.pred_sem_seg.sem_seg.max()) < 4


@pytest.mark.slow
def test_published_recipe_builds_at_full_size():
    """The real ViTamin-L-336 FC-CLIP (random weights: no download), its widths consistent."""
    import copy

    import torch

    from vitamin_dense.registry import MODELS, register_all_modules
    register_all_modules()
    model_cfg = copy.deepcopy(load_config(os.path.join(ROOT, 'configs', 'ov_seg',
                                                       'vitamin_l_coco.py')).model.to_dict())
    model_cfg['backbone']['weights'] = None
    model_cfg.setdefault('text_encoder', {}).update(weights=None, disk_cache=False)
    model_cfg['global_pos_embed']['interpolate'] = True  # one 336 px window below, not 1344
    model = MODELS.build(model_cfg)
    bb = model.backbone
    assert (bb.model_name, bb.window_size, bb.channels['s16'], bb.channels['clip']) == \
        ('ViTamin-L-336', 336, 1024, 768)
    assert sum(p.numel() for p in bb.parameters()) > 300e6
    assert model.text_encoder.embed_dim == bb.channels['clip']
    assert model.head.num_queries == 250
    assert not any(p.requires_grad for p in bb.parameters())
    model.set_vocabulary('cat; dog', 'test')
    with torch.no_grad():
        out = model.eval()._forward(torch.zeros(1, 3, 336, 336))
    assert out['class_probs'].shape == (1, 250, 3)
