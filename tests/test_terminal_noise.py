"""What the terminal shows is what a user needs: the classes that are in the image, one
warning per problem, and a training log that starts with the run, not the environment."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_shares_list_the_classes_present_and_count_the_rest():
    from vitamin_dense.apis import SegmentationResult
    names = [f'class {i}' for i in range(150)]
    labels = np.zeros((20, 30), np.int16)
    labels[:, 10:] = 7
    labels[15:, 25:] = 42
    result = SegmentationResult(labels=labels, class_names=names, scores=torch.zeros(150, 2, 2))
    lines = result.summary().splitlines()
    assert [ln.split('  ')[0].strip() for ln in lines[:3]] == ['class 7', 'class 0', 'class 42']
    assert lines[3] == '(147 other classes cover no pixel)' and len(lines) == 4
    assert len(result.summary(absent=True).splitlines()) == 150


def test_a_long_class_name_warns_once_not_once_per_template():
    from vitamin_dense.text import TextClassifier
    text = TextClassifier('ViTamin-Tiny', weights=None, templates='vild', disk_cache=False)
    long_name = ' '.join(['very'] * 90) + ' long'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        text.encode(f'cat,{long_name}')
    messages = [str(w.message) for w in caught if 'truncated' in str(w.message)]
    assert len(messages) == 1, messages
    assert 'and 13 more prompts' in messages[0]  # 14 ViLD templates, one line


@pytest.mark.slow  # an end-to-end run in fresh processes (bash tools/run_tests.sh --all)
def test_training_log_starts_with_the_run(tmp_path):
    """No 'Failed to search registry' warning and no environment / config dump before the
    first iteration (it opened with 457 lines)."""
    cfg = tmp_path / 'toy.py'
    cfg.write_text(
        "custom_imports = dict(imports=['vitamin_dense', 'tests.helpers.toy_modules'])\n"
        "model = dict(type='ToyRegressor')\n"
        f"work_dir = r'{tmp_path / 'wd'}'\n"
        "train_dataloader = dict(dataset=dict(type='ToyPoints'), batch_size=4, num_workers=0,\n"
        "                        sampler=dict(type='InfiniteSampler'))\n"
        "train_cfg = dict(by_epoch=False, max_iters=2)\n"
        "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01))\n"
        "default_hooks = dict(logger=dict(type='LoggerHook', interval=1))\n"
        "log_processor = dict(type='LogProcessor', by_epoch=False)\n"
        "default_scope = 'vitamin_dense'\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, 'tools/train.py', str(cfg)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (proc.stdout + proc.stderr).splitlines()
    assert not [ln for ln in log if 'Failed to search registry' in ln]
    first_iter = next(i for i, ln in enumerate(log) if 'Iter(train)' in ln)
    assert first_iter <= 12, '\n'.join(log[:first_iter])
    assert os.path.isfile(tmp_path / 'wd' / 'toy.py')  # the full config is still kept


def test_quieting_dependencies_keeps_our_warnings():
    """The demos quiet the root logger (open_clip logs there); a demo run in-process (the
    Inferencer, the command) must not silence our own warnings for the rest of the process."""
    import logging
    from vitamin_dense.utils.cli import quiet_third_party_logs
    root, ours = logging.getLogger(), logging.getLogger('vitamin_dense')
    levels = root.level, ours.level
    try:
        ours.setLevel(logging.NOTSET)
        quiet_third_party_logs()
        assert not root.isEnabledFor(logging.WARNING)
        assert logging.getLogger('vitamin_dense.datasets.coco_format').isEnabledFor(
            logging.WARNING)
    finally:
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
