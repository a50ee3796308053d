"""The trained segmentor behind the inference API (``Segmenter(predictor='fcclip')``).

A tiny model's checkpoint (runner format) is loaded weights-only with no
download (the config's pretrained weights are replaced by the checkpoint's);
semantic, panoptic and instance tasks return results at the original image
size whose label maps agree with the model's own ``predict``; bad inputs end
in one-line errors.
"""
import os

import numpy as np
import pytest
import torch
from skimage import data as skdata

from tests.helpers.checkpoints import tiny_checkpoint
from vitamin_dense.apis import FCCLIPPredictor, MaskSegmentationResult, Segmenter
from vitamin_dense.errors import ConfigError, WeightsError
from vitamin_dense.text import parse_vocabulary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(CONFIG, tmp_path_factory.mktemp('ckpt') / 'tiny.pth',
                           with_config=False)


@pytest.fixture(scope='module')
def segmenter(checkpoint):
    return Segmenter(predictor='fcclip', config=CONFIG, checkpoint=checkpoint, task='panoptic',
                     device='cpu', max_side=256)


def test_tasks_give_full_size_results(segmenter):
    image = skdata.coffee()[::3, ::3]  # 134 x 200
    vocab = 'circle; cup, mug; sky; table'
    result = segmenter(image, vocab)
    assert isinstance(result, MaskSegmentationResult) and result.task == 'panoptic'
    assert result.labels.shape == image.shape[:2] and result.panoptic.shape == image.shape[:2]
    assert result.scores.shape[0] == 4
    torch.testing.assert_close(result.scores.sum(0), torch.ones(result.scores.shape[1:]))
    for seg in result.segments:
        assert (result.panoptic == seg['id']).sum() == seg['area'] > 0
        assert seg['name'] == result.class_names[seg['label']]
    # 'circle' and 'sky' are training classes and keep their kind; new names are things
    model = segmenter.predictor.model
    assert model.test_vocabulary.is_thing == (True, True, False, True)
    assert model.seen_classes().tolist() == [True, False, True, False]
    picture = result.overlay()
    assert picture.ndim == 3 and picture.shape[0] >= 256

    for task in ('instance', 'semantic'):
        predictor = FCCLIPPredictor(model, torch.device('cpu'), task=task)
        res = predictor.predict([segmenter.prepare(image)], parse_vocabulary(vocab))[0]
        assert res.task == task and res.labels.shape == image.shape[:2]
        if task == 'instance':
            inst = res.instances
            assert inst['masks'].shape[1:] == image.shape[:2] and inst['masks'].dtype == bool
            assert np.all(np.diff(inst['scores']) <= 0)  # best first
            assert inst['boxes'].shape == (len(inst['scores']), 4)
        assert res.overlay().dtype == np.uint8
        assert res.to_dict()['task'] == task


def test_labels_agree_with_model_predict(segmenter):
    from mmengine.structures import BaseDataElement
    image = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    result = segmenter(image, 'circle,square,sky,grass')
    model = segmenter.predictor.model
    bgr = torch.from_numpy(np.ascontiguousarray(image[..., ::-1])).permute(2, 0, 1)
    data = model.data_preprocessor(dict(inputs=[bgr], data_samples=[BaseDataElement(
        metainfo=dict(img_shape=(96, 128), ori_shape=(96, 128)))]), False)
    pred = model.predict(**data)[0].pred_sem_seg.sem_seg[0].numpy()
    # the API labels low-resolution scores, the model full-resolution ones: same up to edges
    assert (pred == result.labels).mean() > 0.9


def test_predictor_errors(checkpoint, tmp_path):
    with pytest.raises(ConfigError, match='needs a checkpoint'):
        Segmenter(predictor='fcclip', config=CONFIG, device='cpu')
    with pytest.raises(ConfigError, match='carries no config'):  # and none is given
        Segmenter(predictor='fcclip', checkpoint=checkpoint, device='cpu')
    with pytest.raises(WeightsError, match='not found'):
        Segmenter(predictor='fcclip', config=CONFIG, checkpoint=str(tmp_path / 'nope.pth'))
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'backbone.x': torch.zeros(1)}}, other)
    with pytest.raises(WeightsError, match='no FC-CLIP head'):
        Segmenter(predictor='fcclip', config=CONFIG, checkpoint=str(other))
    with pytest.raises(ConfigError, match='unknown task'):
        Segmenter(predictor='fcclip', config=CONFIG, checkpoint=checkpoint, task='depth')


def _demo():
    import importlib.util
    spec = importlib.util.spec_from_file_location('segment_demo',
                                                  os.path.join(ROOT, 'demo', 'segment.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_uses_the_trained_head(checkpoint, tmp_path, capsys):
    import cv2
    image = tmp_path / 'coffee.png'
    cv2.imwrite(str(image), skdata.coffee()[::4, ::4, ::-1])
    out = tmp_path / 'pan.png'
    demo = _demo()
    code = demo.main([str(image), '--vocab', 'cup; table; sky', '--config', CONFIG,
                      '--checkpoint', checkpoint, '--task', 'panoptic', '--out', str(out),
                      '--device', 'cpu'])
    assert code == 0 and out.is_file()
    printed = capsys.readouterr().out
    # the trained head's panoptic listing (it names only the classes present: with random
    # weights which ones, if any, is arbitrary)
    assert 'panoptic segments (the overlay)' in printed


def test_demo_flag_errors_are_one_line(checkpoint, capsys, monkeypatch):
    import sys
    from vitamin_dense.utils.cli import run_cli
    demo = _demo()
    for argv, expected in (
            (['--vocab', 'a,b', '--task', 'instance'], 'needs a trained model'),
            (['--vocab', 'a,b', '--config', CONFIG], '--config needs --checkpoint'),
            (['--vocab', 'a,b', '--config', CONFIG, '--checkpoint', checkpoint,
              '--random-init'], 'do(es) not apply'),
            (['--vocab', 'a,b', '--config', CONFIG, '--checkpoint', 'missing.pth'],
             'checkpoint not found')):
        monkeypatch.setattr(sys, 'argv', ['segment.py', *argv])
        with pytest.raises(SystemExit) as exc:
            run_cli(demo.main)
        err = capsys.readouterr().err.strip()
        errors = [line for line in err.splitlines() if line.startswith('error:')]
        assert exc.value.code == 2 and len(errors) == 1 and expected in errors[0], err
