"""tools/train.py and tools/test.py turn config mistakes into one-line errors."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _assert_one_line_error(proc, fragment):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith('error: '), proc.stderr
    assert fragment in lines[-1], lines[-1]
    assert 'Traceback' not in proc.stderr


def test_missing_config(tmp_path):
    _assert_one_line_error(_run('tools/train.py', str(tmp_path / 'nope.py')), 'config file not found')


def test_syntax_error_in_config(tmp_path):
    cfg = tmp_path / 'bad.py'
    cfg.write_text("model = dict(type='X'\n")
    _assert_one_line_error(_run('tools/train.py', str(cfg)), 'syntax error')


def _toy_cfg(tmp_path, model_type='ToyRegressor', extra=''):
    cfg = tmp_path / 'toy.py'
    cfg.write_text(
        "custom_imports = dict(imports=['vitamin_dense', 'tests.helpers.toy_modules'])\n"
        f"model = dict(type='{model_type}'{extra})\n"
        f"work_dir = r'{tmp_path / 'wd'}'\n"
        "train_dataloader = dict(dataset=dict(type='ToyPoints'), batch_size=4, num_workers=0,\n"
        "                        sampler=dict(type='InfiniteSampler'))\n"
        "train_cfg = dict(by_epoch=False, max_iters=2)\n"
        "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01))\n"
        "default_scope = 'vitamin_dense'\n")
    return str(cfg)


def test_unknown_model_type(tmp_path):
    proc = _run('tools/train.py', _toy_cfg(tmp_path, 'ToyRegresor'))
    _assert_one_line_error(proc, 'configuration error')
    assert 'ToyRegresor' in proc.stderr


def test_unexpected_argument(tmp_path):
    proc = _run('tools/train.py', _toy_cfg(tmp_path, extra=', widht=3'))
    _assert_one_line_error(proc, 'widht')


def test_cfg_options_typo_in_path(tmp_path):
    proc = _run('tools/train.py', _toy_cfg(tmp_path), '--cfg-options', 'trian_cfg.max_iters=3')
    _assert_one_line_error(proc, "no 'trian_cfg'")


def test_amp_without_gpu_is_explained(tmp_path):
    pytest.importorskip('torch')
    import torch
    if torch.cuda.is_available():
        pytest.skip('a GPU is present')
    _assert_one_line_error(_run('tools/train.py', _toy_cfg(tmp_path), '--amp'), '--amp needs a CUDA GPU')


def test_train_runs_and_test_needs_existing_checkpoint(tmp_path):
    cfg = _toy_cfg(tmp_path)
    proc = _run('tools/train.py', cfg)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_one_line_error(_run('tools/test.py', cfg, str(tmp_path / 'missing.pth')),
                           'checkpoint not found')


def test_cfg_options_value_of_the_wrong_type_is_one_line(tmp_path):
    """`lr=abc` used to fail deep inside the optimizer, with a traceback."""
    proc = _run('tools/train.py', _toy_cfg(tmp_path), '--cfg-options',
                'optim_wrapper.optimizer.lr=abc')
    _assert_one_line_error(proc, "optim_wrapper.optimizer.lr=abc: the config has a number there")
    proc = _run('tools/train.py', _toy_cfg(tmp_path), '--cfg-options', 'train_cfg.max_iters=x')
    _assert_one_line_error(proc, 'has an integer there')


def test_bad_value_in_a_config_file_is_one_line(tmp_path):
    """A value the built class rejects (here the optimizer's learning rate) names the class."""
    cfg = _toy_cfg(tmp_path)
    with open(cfg, 'a') as f:
        f.write("optim_wrapper = dict(optimizer=dict(type='SGD', lr='abc'))\n")
    proc = _run('tools/train.py', cfg)
    _assert_one_line_error(proc, 'configuration error: building SGD')
