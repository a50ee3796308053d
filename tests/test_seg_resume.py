"""A training run killed after its first checkpoint resumes from it and finishes.

``tools/train.py`` on the tiny synthetic config (a few 64 px images) is
started in a subprocess, killed with SIGKILL as soon as its first checkpoint
file appears, then restarted with ``--resume``: the second run must load that
checkpoint (weights-only), continue at the next iteration and write the last
checkpoint, whose message hub says training went all the way.
"""
import os
import re
import signal
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py')


def _options(data_root: str, max_iters: int) -> list:
    return [
        '--cfg-options',
        f'train_dataloader.dataset.data_root={data_root}',
        'train_dataloader.dataset.generator.num_images=8',
        'train_dataloader.dataset.generator.image_size=64',
        'train_dataloader.dataset.pipeline.3.scale=(64,64)',
        'train_dataloader.dataset.pipeline.4.crop_size=(64,64)',
        # the validation loop is built (not run): keep its data out of the working directory
        f'val_dataloader.dataset.data_root={data_root}',
        'val_dataloader.dataset.generator.num_images=2',
        'val_dataloader.dataset.generator.image_size=64',
        'train_dataloader.batch_size=2',
        f'train_cfg.max_iters={max_iters}', f'train_cfg.val_interval={10 ** 6}',
        f'param_scheduler.end={max_iters}',
        'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.max_keep_ckpts=5',
        'default_hooks.logger.interval=1',
        'model.head.num_queries=4', 'model.criterion.num_points=64',
    ]


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS='1')
    return env


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    work = tmp_path / 'work'
    data_root = str(tmp_path / 'data')
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), CONFIG,
           '--work-dir', str(work)]
    log1 = open(tmp_path / 'first.log', 'w')
    proc = subprocess.Popen(cmd + _options(data_root, 1000), stdout=log1,
                            stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    deadline = time.time() + 300
    first = None
    try:
        while time.time() < deadline and proc.poll() is None:
            found = sorted(work.glob('iter_*.pth')) if work.exists() else []
            if found:
                first = found[0]
                break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the run we started, hard
        proc.wait()
        log1.close()
    assert first is not None, 'no checkpoint within 300 s:\n' + \
        (tmp_path / 'first.log').read_text()[-3000:]
    assert proc.returncode == -signal.SIGKILL
    # every file under a final name is a complete checkpoint (the kill may land mid-write)
    for path in work.glob('iter_*.pth'):
        torch.load(path, map_location='cpu', weights_only=True)
    saved = sorted(int(re.search(r'iter_(\d+)', p.name).group(1)) for p in work.glob('iter_*.pth'))
    start = saved[-1]
    target = start + 2
    result = subprocess.run(cmd + ['--resume'] + _options(data_root, target), env=_env(),
                            capture_output=True, text=True, timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert f'resuming from {work}/iter_{start}.pth' in out or \
        f'resuming from {os.path.join(str(work), f"iter_{start}.pth")}' in out, out[-3000:]
    assert re.search(rf'Iter\(train\) \[\s*{start + 1}/{target}\]', out), out[-3000:]
    assert not re.search(rf'Iter\(train\) \[\s*1/{target}\]', out)
    last = work / f'iter_{target}.pth'
    assert last.is_file()
    ckpt = torch.load(last, map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == target
    assert 'vocabularies._extra_state' in ckpt['state_dict']
