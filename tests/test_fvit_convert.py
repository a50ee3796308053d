"""tools/convert_checkpoint.py fvit: the released MMDetection 2.x checkpoints and embedding files.

The key mapping is checked against the committed parameter manifests of the
reference model (tests/data/fvit_reference/manifest_*.json: every parameter
name and shape of the released OV-COCO / OV-LVIS Sliding F-ViT, built from the
reference's own configs), the conversion end to end on a small checkpoint in
the released layout.
"""
import argparse
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS, DefaultScope

import vitamin_dense  # noqa: F401
from vitamin_dense.engine.checkpoint import load_runner_checkpoint
from vitamin_dense.engine.config import load_config
from vitamin_dense.errors import ConfigError, WeightsError
from vitamin_dense.models.fvit import convert as fvit_convert
from vitamin_dense.models.fvit.convert import EMBEDDINGS, KEY_MAP, OWN_ONLY, map_key

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, 'tests', 'data', 'fvit_reference')


def _manifest(which):
    with open(os.path.join(DATA, f'manifest_{which}.json')) as f:
        return json.load(f)['parameters']


def _mapped_manifest(which):
    """Our names and shapes of the reference parameters, as the converter maps them."""
    out, embeddings = {}, None
    for name, (shape, _) in _manifest(which).items():
        if name == EMBEDDINGS:
            embeddings = shape
            continue
        new = map_key(name)
        if new is not None:
            out[new] = tuple(shape)
    out['roi_head.bbox_head.background_embedding'] = (embeddings[0],)
    return out, embeddings


@pytest.mark.parametrize('which', ['ovcoco', 'ovlvis'])
def test_every_reference_parameter_has_a_place(which):
    manifest = _manifest(which)
    mapped, embeddings = _mapped_manifest(which)
    dropped = [k for k in manifest if k != EMBEDDINGS and map_key(k) is None]
    assert dropped == ['roi_head.bbox_head.fc_cls.bias', 'roi_head.bbox_head.fc_cls.weight']
    assert len(mapped) == len(manifest) - len(dropped)   # one-to-one (+ the background column)
    assert embeddings == [768, 66 if which == 'ovcoco' else 1204]
    assert sum(k.startswith('backbone.visual.') for k in mapped) == 560
    assert mapped['adapter.levels.0.0.weight'] == (160, 160, 3, 3)
    assert mapped['adapter.levels.0.1.running_var'] == (160,)
    assert mapped['adapter.levels.1.weight'] == (320, 320, 3, 3)
    assert mapped['roi_head.bbox_head.logit_scale'] == ()
    assert mapped['roi_head.bbox_head.cls_fcs.0.weight'] == (768, 768)
    assert mapped['roi_head.bbox_head.reg_fcs.0.weight'] == (768, 768)
    assert ('rpn_head.rpn_conv.0.bn.weight' in mapped) == (which == 'ovlvis')
    with pytest.raises(WeightsError, match='not a parameter'):
        map_key('backbone.interpolate5.weight')


@pytest.mark.slow
@pytest.mark.parametrize('which', ['ovcoco', 'ovlvis'])
def test_reference_manifest_is_exactly_our_published_model(which):
    """Every key and shape of our full-size published model, against the reference manifest."""
    cfg = load_config(os.path.join(ROOT, f'configs/ov_det/fvit_vitamin_l_{which}.py'),
                      {'model.backbone.weights': None})
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not k.startswith(OWN_ONLY) and not k.endswith('_extra_state')}
    del model
    mapped, _ = _mapped_manifest(which)
    assert sorted(set(ours) - set(mapped)) == []
    assert sorted(set(mapped) - set(ours)) == []
    assert {k: (mapped[k], v) for k, v in ours.items() if mapped[k] != v} == {}


# ------------------------------------------------------------------ end to end (tiny)
TINY_PUBLISHED = """
_base_ = [{base!r}]
model = dict(
    window_stride=40,
    backbone=dict(model_name='ViTamin-Tiny', weights=None, out_block_indices=(0, ),
                  memory_budget_mb=256),
    text_encoder=dict(disk_cache=False, progress=False),
    roi_head=dict(bbox_head=dict(embed_dim=64, fc_out_channels=64),
                  clip_roi_extractor=dict(out_channels=64)),
    test_cfg=dict(rpn=dict(max_per_img=50), rcnn=dict(score_thr=0.0)))
"""


def _tiny_config(tmp_path, which='ovcoco'):
    path = tmp_path / f'fvit_tiny_{which}.py'
    path.write_text(TINY_PUBLISHED.format(
        base=os.path.join(ROOT, f'configs/ov_det/fvit_vitamin_l_{which}.py')))
    return str(path)


def _build(config):
    from mmengine.model import revert_sync_batchnorm
    cfg = load_config(config)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    return model.eval()


def _released_layout(model, table):
    """The model's weights named as the released MMDetection 2.x checkpoints name them."""
    inverse = [(ours, ref) for ref, ours in KEY_MAP if ours is not None]
    out = {}
    for name, value in model.state_dict().items():
        if name.startswith(OWN_ONLY) or name.endswith('_extra_state') or \
                name == 'roi_head.bbox_head.background_embedding':
            continue
        for ours, ref in inverse:
            if name == ours or (ours.endswith('.') and name.startswith(ours)):
                out[ref + name[len(ours):]] = value.clone()
                break
        else:
            raise AssertionError(name)
    head = model.roi_head.bbox_head
    out[EMBEDDINGS] = torch.cat([table, head.background_embedding[None]]).t().contiguous()
    out['roi_head.bbox_head.fc_cls.weight'] = torch.randn(len(table) + 1, table.shape[1])
    out['roi_head.bbox_head.fc_cls.bias'] = torch.zeros(len(table) + 1)
    return out


def _randomize(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith(('backbone.', 'text_encoder.')):
                p.add_(torch.randn(p.shape, generator=gen) * 0.02)
        model.roi_head.bbox_head.logit_scale.fill_(31.0)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


@pytest.mark.slow  # an end-to-end run in fresh processes (bash tools/run_tests.sh --all)
def test_convert_released_checkpoint_end_to_end(tmp_path):
    from vitamin_dense.datasets.ov_splits import OV_COCO_BASE_CLASSES, ov_coco_classes
    from vitamin_dense.text import normalize_name
    config = _tiny_config(tmp_path)
    source = _build(config)
    _randomize(source)
    names = list(ov_coco_classes())
    table = F.normalize(torch.randn(len(names), 64, generator=torch.Generator().manual_seed(1)),
                        dim=-1)
    src = tmp_path / 'released.pth'
    torch.save({'meta': {'CLASSES': tuple(names), 'mmdet_version': '2.28.1'},
                'state_dict': _released_layout(source, table)}, src)
    dst = tmp_path / 'ours.pth'
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'convert_checkpoint.py'),
                          'fvit', str(src), str(dst), '--config', config],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'wrote' in run.stdout

    ckpt = load_runner_checkpoint(str(dst))          # weights-only readable
    assert 'SlidingFViT' in ckpt['meta']['cfg']
    converted = _build(config)
    converted.load_state_dict(ckpt['state_dict'], strict=True)
    head = converted.roi_head.bbox_head
    assert float(head.logit_scale.detach()) == 31.0
    torch.testing.assert_close(head.background_embedding,
                               source.roi_head.bbox_head.background_embedding)
    assert converted.text_encoder.table_names == names
    torch.testing.assert_close(converted.text_encoder.encode(names), table)
    assert converted.get_extra_state() == {
        'seen_classes': sorted(normalize_name(n) for n in OV_COCO_BASE_CLASSES)}
    for key, value in source.state_dict().items():
        if not key.startswith(OWN_ONLY) and not key.endswith('_extra_state'):
            torch.testing.assert_close(ckpt['state_dict'][key], value, msg=key)

    # The converted model detects exactly as the released weights do (same embeddings).
    source.text_encoder.set_table(names, table)
    source.set_extra_state(converted.get_extra_state())
    images = torch.randn(1, 3, 96, 128)
    outs = []
    for model in (source, converted):
        model.set_vocabulary('dataset:ov_coco', base_classes=OV_COCO_BASE_CLASSES)
        with torch.no_grad():
            outs.append(model.predict(images, _samples(96, 128))[0].pred_instances)
    assert len(outs[0]) > 0
    torch.testing.assert_close(outs[0].bboxes, outs[1].bboxes)
    torch.testing.assert_close(outs[0].scores, outs[1].scores)
    assert outs[0].labels.tolist() == outs[1].labels.tolist()


def _samples(h, w):
    from mmdet.structures import DetDataSample
    return [DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                        batch_input_shape=(h, w), scale_factor=(1.0, 1.0)))]


def test_converter_refuses_what_does_not_fit(tmp_path):
    config = _tiny_config(tmp_path)
    model = _build(config)
    table = F.normalize(torch.randn(65, 64), dim=-1)
    state = _released_layout(model, table)
    with pytest.raises(WeightsError, match='no roi_head.bbox_head.all_embeddings'):
        fvit_convert.convert_checkpoint(
            {'state_dict': {k: v for k, v in state.items() if k != EMBEDDINGS}}, 'x.pth',
            str(tmp_path / 'o.pth'), config=config)
    with pytest.raises(WeightsError, match='does not fit'):   # an OV-LVIS file, a COCO config
        bad = dict(state)
        bad['roi_head.mask_head.conv_logits.weight'] = torch.zeros(1, 256, 1, 1)
        fvit_convert.convert_checkpoint({'state_dict': bad}, 'x.pth', str(tmp_path / 'o.pth'),
                                        config=config)
    with pytest.raises(ConfigError, match='--class-names'):
        odd = dict(state)
        odd[EMBEDDINGS] = torch.randn(64, 11)
        fvit_convert.convert_checkpoint({'state_dict': odd}, 'x.pth', str(tmp_path / 'o.pth'),
                                        config=config)
    assert not (tmp_path / 'o.pth').exists()


def test_reference_embedding_file_becomes_a_table(tmp_path):
    """datasets/embeddings/*.pt of the reference ({name: vector}) -> FViTTextEncoder's table."""
    from vitamin_dense.models.fvit.text import FViTTextEncoder, load_class_embeddings
    from vitamin_dense.text import Vocabulary
    src = os.path.join(DATA, 'class_embed.pt')   # written by the reference's format
    reference = torch.load(src, weights_only=True)
    dst = tmp_path / 'table.safetensors'
    args = argparse.Namespace(src=src, dst=str(dst), config=None, class_names=None,
                                           seen_classes=None, cfg_options={})
    fvit_convert.convert(args)
    with pytest.raises(ConfigError, match='.safetensors'):
        fvit_convert.convert(argparse.Namespace(**dict(vars(args),
                                                                    dst=str(tmp_path / 'x.pth'))))
    encoder = FViTTextEncoder('ViTamin-Tiny', weights=None, disk_cache=False, progress=False)
    with pytest.raises(WeightsError, match='does not fit the text tower'):   # 32-d vs 64-d
        FViTTextEncoder('ViTamin-Tiny', weights=None, disk_cache=False,
                        class_embeddings=str(dst))
    with pytest.raises(WeightsError, match='not a class-embedding table'):
        load_class_embeddings(src)
    names, embeddings = load_class_embeddings(str(dst))
    assert names == list(reference)
    torch.testing.assert_close(embeddings, torch.stack([reference[n] for n in names]))
    wide = torch.randn(len(names), 64)
    encoder.set_table(names, wide)
    mixed = encoder.encode(['umbrella', 'zebra', 'background'])
    torch.testing.assert_close(mixed[0], F.normalize(wide[names.index('umbrella')], dim=0))
    torch.testing.assert_close(mixed[2], F.normalize(wide[names.index('background')], dim=0))
    torch.testing.assert_close(mixed[1], encoder._encode_uncached(
        Vocabulary((('zebra',),)))[0])
    # the table travels in the module's state
    fresh = FViTTextEncoder('ViTamin-Tiny', weights=None, disk_cache=False, progress=False)
    fresh.load_state_dict(encoder.state_dict(), strict=True)
    assert fresh.table_names == names


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / 'not_a_checkpoint.pth'
    bad.write_text('hello')
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'convert_checkpoint.py'),
                          'fvit', str(bad), str(tmp_path / 'out.pth')],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error:') and 'not_a_checkpoint' in lines[0]
