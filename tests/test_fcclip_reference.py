"""Sliding FC-CLIP as published: our model against the reference's own numbers.

``tests/data/fcclip_reference/`` holds what the reference code (Beckschen/ViTamin
``vitamin_fcclip``: FC-CLIP with a sliding-window ViTamin backbone) produced on
random weights (how: ``SOURCE.md`` there):

* the key -> shape list of the full-size ViTamin-L-336 model's state dict, the
  keys of the released checkpoint: the converter maps every one of them onto
  our published model (built on the meta device), none left over either way;
* a reduced model's checkpoint, one input and its outputs: converted and
  loaded strictly, ours reproduces the backbone maps (position embedding per
  window, ``res5 = res4[::2, ::2]``), the per-synonym text classifier, mask
  logits, both classifiers (max over synonyms), the ensembled class
  probabilities (on all masks, and on valid masks only), the semantic,
  panoptic and instance results, and the training-mode logits of every decoder
  step, to float tolerance.
"""
import json
import os

import pytest
import torch

from helpers import fcclip_reference as ref
from vitamin_dense.errors import WeightsError
from vitamin_dense.models.fcclip.convert import (DROPPED, check_against, convert_state_dict,
                                                 expected_state_shapes,
                                                 training_vocabulary_state)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLISHED = os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_l_coco.py')
H, W = ref.META['resized']
OUT_SIZE = (ref.META['height'], ref.META['width'])
SIZE = ref.META['global_size']


# ----------------------------------------------------------------- full size
def test_converter_maps_every_key_of_the_released_model():
    from vitamin_dense.engine.config import load_config
    with open(ref.FULL_SIZE_SHAPES, encoding='utf-8') as f:
        manifest = json.load(f)
    shapes = manifest['state_dict']
    assert len(shapes) == manifest['num_tensors'] > 1000
    reference = {k: torch.empty(s, device='meta') for k, s in shapes.items()}
    ours = convert_state_dict(reference, 'manifest')
    # one-to-one: every reference key but the criterion's buffer has its own key of ours
    assert len(ours) == len(shapes) - len([k for k in shapes if k in DROPPED])
    assert set(shapes) & set(DROPPED) == {'criterion.empty_weight'}
    ours['vocabularies._extra_state'] = training_vocabulary_state('dataset:coco_panoptic')
    expected = expected_state_shapes(load_config(PUBLISHED).model.to_dict())
    check_against(ours, expected, 'manifest', PUBLISHED)  # raises on any difference
    assert set(ours) == set(expected)
    assert expected['global_pos_embed.s4'] == (1, 160, 336, 336)  # the 36M learned maps
    maps = sum(torch.Size(expected[k]).numel() for k in expected
               if k.startswith('global_pos_embed.'))
    assert maps == 36_126_720 == sum(torch.Size(s).numel() for k, s in shapes.items()
                                     if k.startswith('global_pos_embed.'))


# ------------------------------------------------------------------- reduced
@pytest.fixture(scope='module')
def model():
    from vitamin_dense.registry import MODELS, register_all_modules
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    model = MODELS.build(ref.model_config())
    state = convert_state_dict(ref.reference_checkpoint(), 'reference')
    model.set_vocabulary(ref.vocabulary('train'), 'train')
    state['vocabularies._extra_state'] = model.vocabularies.get_extra_state()
    model.load_state_dict(state, strict=True)
    model.set_vocabulary(ref.vocabulary('test'), 'test')
    return model.eval()


@pytest.fixture(scope='module')
def expected():
    return ref.reference_outputs()


def _input(expected) -> torch.Tensor:
    """The reference's input path: black padding to the global size, then normalisation."""
    from vitamin_dense.models.fcclip.data_preprocessor import CLIP_MEAN, CLIP_STD
    image = torch.zeros(1, 3, SIZE, SIZE)
    image[0, :, :H, :W] = expected['image'].float()
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (image - mean) / std


def _close(actual, desired, rtol=1e-4, atol=1e-4):
    torch.testing.assert_close(actual.float(), desired.float(), rtol=rtol, atol=atol)


def test_reference_ran_our_tiny_variant():
    import open_clip
    assert open_clip.get_model_config(ref.MODEL_NAME) == ref.META['open_clip_config']


def test_seen_classes_and_input_match(model, expected):
    assert model.seen_classes().long().tolist() == ref.META['category_overlapping_mask']
    _close(_input(expected), expected['backbone_input'], 0, 1e-6)


def test_backbone_maps_match(model, expected):
    with torch.no_grad():
        feats = model.extract_feat(_input(expected))
    for ours, theirs in (('s4', 'res2'), ('s8', 'res3'), ('s16', 'res4'), ('s32', 'res5')):
        _close(feats[ours], expected[f'features.{theirs}'], 1e-4, 1e-5)
    _close(feats['s16'], expected['features.clip_vis_dense'], 1e-4, 1e-5)


def test_text_classifier_per_synonym_matches(model, expected):
    """The text tower converted: VILD templates averaged per synonym, in order."""
    for split in ('test', 'train'):
        rows = model.text_encoder.encode_synonyms(ref.vocabulary_spec(split))
        _close(rows, expected[f'{split}_text_classifier'], 0, 1e-5)
    sizes = [len(c) for c in ref.classes(ref.META['test_classes'])]
    assert sizes == ref.META['test_num_synonyms'] and max(sizes) > 2 and min(sizes) == 1
    grouped = model.class_embeddings('test')  # each class's synonyms, padded by repeats
    assert grouped.shape == (len(sizes), max(sizes), 64)
    _close(grouped[1], expected['test_text_classifier'][2:5], 0, 1e-5)  # cat, kitty, kitten


def test_logits_masks_and_ensemble_match(model, expected):
    x = _input(expected)
    with torch.no_grad():
        feats = model.extract_feat(x)
        head = model.head(model.head_inputs(feats), model.in_vocab_embeddings('test'),
                          all_steps=False)
        _close(head['pred_masks'][-1], expected['mask_logits'], 1e-4, 1e-3)
        _close(head['pred_logits'][-1], expected['in_vocab_logits'])
        out_logits, _ = model.head.out_vocab_logits(
            head['pred_masks'][-1], feats['s16'], model.backbone, model.class_embeddings('test'),
            model.text_encoder.logit_scale.exp())
        _close(out_logits, expected['out_vocab_logits'][..., :-1])
        out = model._forward(x)
    _close(out['mask_logits'], expected['mask_logits'], 1e-4, 1e-3)
    # the reference keeps log(p + 1e-8) of the ensembled probabilities
    _close(torch.log(out['class_probs'][0] + 1e-8), expected['mask_cls'])
    model.ensemble['ensemble_on_valid_mask'] = True
    try:
        with torch.no_grad():
            valid = model._forward(x)
    finally:
        model.ensemble['ensemble_on_valid_mask'] = False
    _close(torch.log(valid['class_probs'][0] + 1e-8), expected['mask_cls_valid_only'])


def _predict(model, expected, **test_cfg):
    from mmengine.structures import BaseDataElement
    sample = BaseDataElement(metainfo=dict(img_shape=(H, W), ori_shape=OUT_SIZE))
    with torch.no_grad():
        out = model._forward(_input(expected))
        return model.postprocess(out, (SIZE, SIZE), [sample], return_seg_logits=True,
                                 **test_cfg)[0]


def _same_panoptic(ours: torch.Tensor, theirs: torch.Tensor, segments: list,
                   num_classes: int) -> None:
    """Same segments (pixel sets), categories and thing flags, whatever the ids."""
    from vitamin_dense.models.fcclip.postprocess import INSTANCE_OFFSET
    info = {s['id']: s for s in segments}
    their_cat = torch.full_like(ours, -1)
    their_thing = torch.zeros_like(ours, dtype=torch.bool)
    for seg_id, s in info.items():
        their_cat[theirs == seg_id] = s['category_id']
        their_thing[theirs == seg_id] = s['isthing']
    void = ours == num_classes
    our_cat = torch.where(void, torch.full_like(ours, -1), ours % INSTANCE_OFFSET)
    assert torch.equal(our_cat, their_cat)
    assert torch.equal(ours >= INSTANCE_OFFSET, their_thing)
    pairs = torch.unique(torch.stack([ours.flatten(), theirs.long().flatten()]), dim=1)
    assert pairs.shape[1] == len(ours.unique()) == len(theirs.unique())


def test_semantic_panoptic_and_instance_results_match(model, expected):
    num_classes = len(ref.META['test_classes'])
    sample = _predict(model, expected)
    _close(sample.seg_logits.data, expected['sem_seg'], 1e-4, 1e-5)
    assert torch.equal(sample.pred_sem_seg.sem_seg[0], expected['sem_seg'].argmax(0))
    assert len(sample.pred_sem_seg.sem_seg.unique()) >= 4
    _same_panoptic(sample.pred_panoptic_seg.sem_seg[0], expected['panoptic_seg'],
                   ref.META['segments_info'], num_classes)
    # at a lower overlap threshold more segments survive (things of one class, stuff)
    low = _predict(model, expected, overlap_thr=ref.META['overlap_threshold_low'])
    segments = ref.META['segments_info_overlap_low']
    assert len(segments) >= 5 and {s['isthing'] for s in segments} == {True, False}
    _same_panoptic(low.pred_panoptic_seg.sem_seg[0], expected['panoptic_seg_overlap_low'],
                   segments, num_classes)
    inst = sample.pred_instances
    their_scores = expected['instances.scores']
    assert len(inst) == len(their_scores) > 10
    for k in range(len(their_scores)):
        match = (inst.labels == expected['instances.pred_classes'][k]) & \
            ((inst.scores - their_scores[k]).abs() < 1e-5)
        overlap = (inst.masks[match] == expected['instances.pred_masks'][k]).flatten(1)
        assert bool((overlap.float().mean(1) > 0.995).any()), f'reference instance {k}'
    with torch.no_grad():
        valid_only = model.ensemble['ensemble_on_valid_mask'] = True
        try:
            sample = _predict(model, expected)
        finally:
            model.ensemble['ensemble_on_valid_mask'] = not valid_only
    _close(sample.seg_logits.data, expected['sem_seg_valid_only'], 1e-4, 1e-5)


def test_training_mode_logits_of_every_step_match(model, expected):
    """In training too each class takes its synonyms' largest logit (the training vocabulary)."""
    model.train()
    try:
        with torch.no_grad():
            feats = model.extract_feat(_input(expected))  # train stride = the port's (test) one
            out = model.head(model.head_inputs(feats), model.in_vocab_embeddings('train'),
                             all_steps=True)
    finally:
        model.eval()
    _close(torch.stack(out['pred_logits']), expected['train.pred_logits'])
    _close(torch.stack(out['pred_masks']), expected['train.pred_masks'], 1e-4, 1e-3)


# ---------------------------------------------------------------- converter
def _config_file(tmp_path, **model_overrides) -> str:
    """A config for the reduced model (the tiny synthetic config's data and schedule)."""
    model = ref.model_config(**model_overrides)
    text = ("_base_ = ['{}']\n"
            'model = {!r}\n'
            'model.update(_delete_=True)\n').format(
                os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py'), model)
    path = tmp_path / 'fcclip_reference_tiny.py'
    path.write_text(text)
    return str(path)


def _convert(src, dst, config, vocab=None):
    import argparse
    from vitamin_dense.models.fcclip import convert
    parser = argparse.ArgumentParser()
    parser.add_argument('src')
    parser.add_argument('dst')
    convert.add_arguments(parser)
    argv = [str(src), str(dst), '--config', config]
    if vocab:
        argv += ['--train-vocabulary', vocab]
    convert.convert(parser.parse_args(argv))


TRAIN_SPEC = '; '.join(', '.join(c) for c in ref.classes(ref.META['train_classes']))


def test_converted_checkpoint_loads_strictly_and_runs_in_the_demo_path(tmp_path):
    dst = tmp_path / 'ours.pth'
    config = _config_file(tmp_path)
    _convert(ref.CHECKPOINT, dst, config, TRAIN_SPEC)
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'}
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')]
    from vitamin_dense.registry import MODELS
    model = MODELS.build(ref.model_config())
    model.load_state_dict(ckpt['state_dict'], strict=True)
    assert [c[0] for c in model.train_vocabulary.classes] == \
        [c[0] for c in ref.classes(ref.META['train_classes'])]
    # the demo's predictor: any image size is resized and padded to the maps' input
    import numpy as np
    from vitamin_dense.apis.fcclip_predictor import build_fcclip_predictor
    from vitamin_dense.apis.predictor import PreparedImage
    predictor = build_fcclip_predictor(config=config, checkpoint=str(dst), task='panoptic')
    rgb = np.random.default_rng(0).integers(0, 255, (50, 90, 3), dtype=np.uint8)
    image = PreparedImage(original=rgb, processed=rgb, source='random', key='k')
    vocab = ref.vocabulary_spec('test')
    result = predictor.predict([image], vocab)[0]
    assert result.labels.shape == (50, 90) and result.meta['processed_size'] == [71, 128]


def test_converter_errors_are_one_line(tmp_path):
    config = _config_file(tmp_path)
    good = ref.reference_checkpoint()

    def run(state, config=config):
        src = tmp_path / 'src.pth'
        torch.save({'model': state}, src)
        with pytest.raises(WeightsError) as exc:
            _convert(src, tmp_path / 'dst.pth', config, TRAIN_SPEC)
        message = str(exc.value)
        assert '\n' not in message and not (tmp_path / 'dst.pth').exists()
        return message

    assert 'not an FC-CLIP checkpoint' in run({'roi_head.bbox_head.fc_cls.weight':
                                               torch.zeros(3, 4)})
    convnext = {k: v for k, v in good.items() if not k.startswith('global_pos_embed')}
    assert 'ConvNeXt' in run(convnext)
    extra = dict(good, **{'sem_seg_head.predictor.class_embed_extra.weight': torch.zeros(2)})
    assert 'does not know' in run(extra) and 'class_embed_extra' in run(extra)
    missing = {k: v for k, v in good.items() if k != 'sem_seg_head.predictor.logit_scale'}
    assert '1 missing (e.g. head.logit_scale)' in run(missing)
    # the released model converted for a config of another size
    other = _config_file(tmp_path, global_pos_embed=dict(size=2 * SIZE))
    assert 'mis-shaped' in run(good, other) and 'global_pos_embed.s4' in run(good, other)


@pytest.mark.slow
def test_convert_then_test_and_demo_commands(tmp_path):
    """The README's path with the reduced model: convert, tools/test.py, demo/segment.py."""
    import subprocess
    import sys
    config = _config_file(tmp_path)
    data = tmp_path / 'data'
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    dst = tmp_path / 'ours.pth'

    def call(*args):
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    call('tools/convert_checkpoint.py', 'fcclip', ref.CHECKPOINT, str(dst), '--config', config,
         '--train-vocabulary', TRAIN_SPEC)
    out = call('tools/test.py', config, str(dst), '--work-dir', str(tmp_path / 'work'),
               '--cfg-options', f'test_dataloader.dataset.data_root={data}',
               'test_dataloader.dataset.generator.num_images=2')
    assert 'PQ' in out
    call('demo/segment.py', '--config', config, '--checkpoint', str(dst), '--task', 'panoptic',
         '--vocab', 'circle; square; sky', '--out', str(tmp_path / 'vis'))
    assert any(p.endswith('.png') for p in os.listdir(tmp_path / 'vis'))
