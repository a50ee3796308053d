"""A checkpoint that holds every weight never needs the pretrained ones: evaluating it and
demoing it work with the hub blocked (no network, no download, no hub lookup)."""
import os
import subprocess
import sys

import cv2
import pytest
import torch
from skimage import data as skdata

from tests.helpers.checkpoints import tiny_checkpoint
from vitamin_dense.engine.config import load_config, use_checkpoint_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEG_TINY = os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py')
OWL_TINY = os.path.join(ROOT, 'configs', 'ov_det', 'owl_vitamin_tiny_synthetic.py')
PRETRAINED = {'model.backbone.weights': 'datacomp1b', 'model.text_encoder.weights': 'datacomp1b'}
BLOCK = '''import socket
def _blocked(*args, **kwargs):
    raise OSError('network blocked by the test')
socket.socket.connect = _blocked
socket.create_connection = _blocked
'''


def _checkpoint(tmp_path, config):
    """A complete checkpoint of the tiny model, whose config names downloadable weights."""
    return tiny_checkpoint(config, tmp_path / 'complete.pth', config_options=dict(PRETRAINED))


def _blocked_env(tmp_path):
    site = tmp_path / 'site'
    site.mkdir(exist_ok=True)
    (site / 'sitecustomize.py').write_text(BLOCK)
    return dict(os.environ, PYTHONPATH=f'{site}{os.pathsep}{ROOT}', HF_HUB_OFFLINE='1',
                OMP_NUM_THREADS='1', VITAMIN_DENSE_HOME=str(tmp_path / 'home'))


def test_checkpoint_parts_switch_off_their_downloads(tmp_path):
    ckpt = _checkpoint(tmp_path, SEG_TINY)
    cfg = load_config(SEG_TINY, dict(PRETRAINED))
    changed = use_checkpoint_weights(cfg, ckpt)
    assert set(changed) == {'model.backbone.weights', 'model.text_encoder.weights'}
    assert cfg.model.backbone.weights is None and cfg.model.text_encoder.weights is None
    partial = tmp_path / 'head_only.pth'
    torch.save({'state_dict': {k: v for k, v in torch.load(ckpt)['state_dict'].items()
                               if k.startswith('head.')}}, partial)
    cfg = load_config(SEG_TINY, dict(PRETRAINED))
    assert use_checkpoint_weights(cfg, str(partial)) == []  # those weights must come from hub
    assert cfg.model.backbone.weights == 'datacomp1b'


def test_evaluating_a_complete_checkpoint_with_the_hub_blocked(tmp_path):
    ckpt = _checkpoint(tmp_path, SEG_TINY)
    options = [f'{k}={v}' for k, v in PRETRAINED.items()]
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'test.py'), SEG_TINY, ckpt, '--work-dir',
         str(tmp_path / 'work'), '--cfg-options', *options, f'data_root={tmp_path}/data/',
         'test_dataloader.dataset.generator.num_images=2'],
        capture_output=True, text=True, timeout=600, env=_blocked_env(tmp_path),
        cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'panoptic/PQ=' in proc.stdout


@pytest.mark.slow  # an end-to-end run in fresh processes (bash tools/run_tests.sh --all)
@pytest.mark.parametrize('demo,config,vocab', [('segment', SEG_TINY, 'circle; sky'),
                                               ('detect', OWL_TINY, 'circle,square')])
def test_demoing_a_complete_checkpoint_with_the_hub_blocked(tmp_path, demo, config, vocab):
    ckpt = _checkpoint(tmp_path, config)
    image = tmp_path / 'coffee.png'
    cv2.imwrite(str(image), skdata.coffee()[::4, ::4, ::-1])
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'demo', f'{demo}.py'), str(image), '--vocab', vocab,
         '--checkpoint', ckpt, '--out', str(tmp_path / 'out.png'), '--device', 'cpu'],
        capture_output=True, text=True, timeout=600, env=_blocked_env(tmp_path),
        cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / 'out.png').is_file()
