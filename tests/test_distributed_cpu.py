"""Multi-process training through MMEngine's launcher: ``torchrun ... --launcher pytorch``.

The machines here have no GPU, so this is the CPU path (gloo, DDP over the CPU
model); on GPUs the same command uses MMEngine's stock nccl set-up. Two ranks
train the tiny FC-CLIP, validate on a split data set, and only rank 0 writes
the (atomic, weights-only) checkpoints.
"""
import os
import socket
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_train_validate_and_checkpoint(tmp_path):
    data = str(tmp_path / 'data') + '/'
    work = tmp_path / 'work'
    options = [f'{loader}.dataset.data_root={data}'
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    options += ['train_cfg.max_iters=6', 'train_cfg.val_interval=6', 'param_scheduler.end=6',
                'default_hooks.checkpoint.interval=3', 'default_hooks.logger.interval=3',
                'train_dataloader.dataset.generator.num_images=16',
                'val_dataloader.dataset.generator.num_images=6',
                'model.criterion.num_points=256']
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={_free_port()}', os.path.join(ROOT, 'tools', 'train.py'), CONFIG,
         '--launcher', 'pytorch', '--work-dir', str(work), '--cfg-options', *options],
        capture_output=True, text=True, env=env, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert '2 process(es) on cpu' in log                        # the run's first line
    assert 'panoptic/PQ' in log and 'sem_seg/mIoU' in log        # validation gathered
    assert sorted(p.name for p in work.glob('iter_*.pth')) == ['iter_3.pth', 'iter_6.pth']
    assert not list(work.glob('.*partial'))                     # no half-written file
    state = torch.load(work / 'iter_6.pth', map_location='cpu', weights_only=True)
    assert state['meta']['iter'] == 6
    assert not any(k.startswith('module.') for k in state['state_dict'])  # unwrapped
