"""The tiny FC-CLIP really learns: after a short CPU training on synthetic shapes,
PQ and mIoU on held-out synthetic images clearly beat the untrained model and
a majority-class baseline.

Everything goes through the toolkit's machinery: the tiny config, the
runner (VocabularyHook, losses, optimizer constructor), and the config's
evaluators (panopticapi PQ, mmseg mIoU). The majority-class baseline labels
every pixel of every validation image with the class that covers most
training pixels (one stuff segment per image for PQ) and is scored by the
same evaluators.
"""
import glob
import os

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from vitamin_dense.engine.config import build_runner, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py')
ITERS = int(os.environ.get('VITAMIN_DENSE_LEARNING_ITERS', 150))
SIZE = 96


def _config(tmp_path):
    cfg = load_config(CONFIG)
    root = str(tmp_path / 'synthetic') + '/'
    gen_train = dict(num_images=64, image_size=SIZE, seed=11)
    gen_val = dict(num_images=12, image_size=SIZE, seed=12)
    cfg.train_dataloader.dataset.update(data_root=root, generator=gen_train)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.update(data_root=root, generator=gen_val)
    for pipeline in (cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline,
                     cfg.val_dataloader.dataset.pipeline):
        for t in pipeline:
            if 'scale' in t:
                t['scale'] = (SIZE, SIZE)
            if 'crop_size' in t:
                t['crop_size'] = (SIZE, SIZE)
    cfg.train_cfg.max_iters = ITERS
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # runner.test() evaluates
    cfg.model.criterion.num_points = 512  # 24 x 24 mask logits at stride 4
    cfg.param_scheduler.end = ITERS
    cfg.default_hooks.checkpoint.update(interval=10 ** 6, save_last=False)
    cfg.default_hooks.logger.interval = 20
    cfg.work_dir = str(tmp_path / 'work')
    cfg.launcher = 'none'
    return cfg, root


def _metrics(metrics: dict) -> tuple:
    pq = next(v for k, v in metrics.items() if k.endswith('/PQ'))
    miou = next(v for k, v in metrics.items() if k.endswith('mIoU'))
    return float(pq), float(miou)


def _majority_baseline(runner, root: str) -> tuple:
    """PQ / mIoU of labelling everything with the most frequent training class."""
    counts = np.zeros(256, np.int64)
    for path in glob.glob(os.path.join(root, 'annotations', 'semantic_train', '*.png')):
        counts += np.bincount(cv2.imread(path, cv2.IMREAD_UNCHANGED).ravel(), minlength=256)
    counts[255] = 0
    majority = int(counts.argmax())
    evaluator = runner.test_evaluator
    loader = runner.test_dataloader
    assert majority >= len(loader.dataset.metainfo['thing_classes'])  # a stuff class
    for batch in loader:
        samples = []
        for sample in batch['data_samples']:
            h, w = sample.ori_shape
            label = torch.full((1, h, w), majority, dtype=torch.long)
            sample.pred_sem_seg = PixelData(sem_seg=label, data=label)
            sample.pred_panoptic_seg = PixelData(sem_seg=label.clone())  # one stuff segment
            samples.append(sample)
        evaluator.process(data_samples=samples, data_batch=batch)
    return _metrics(evaluator.evaluate(len(loader.dataset)))



@pytest.mark.slow
def test_tiny_fcclip_learns_on_synthetic_shapes(tmp_path, one_thread):
    cfg, root = _config(tmp_path)
    runner = build_runner(cfg)
    untrained = _metrics(runner.test())
    runner.train()
    trained = _metrics(runner.test())
    majority = _majority_baseline(runner, root)
    report = (f'PQ / mIoU after {ITERS} iterations: trained {trained}, untrained {untrained}, '
              f'majority class {majority}')
    print(report)
    # "clearly": at least 10 points above both baselines, and at least twice the better one
    for i, name in enumerate(('PQ', 'mIoU')):
        best_baseline = max(untrained[i], majority[i])
        assert trained[i] >= best_baseline + 10 and trained[i] >= 2 * best_baseline, \
            f'{name} did not clearly improve: {report}'
