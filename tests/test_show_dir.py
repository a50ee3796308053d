"""tools/test.py --show-dir: every config draws its predictions, in MMDetection's layout
(work_dir/<timestamp>/<show dir>/<image name>), with the score cut as a flag."""
import glob
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from vitamin_dense.engine.config import enable_show_dir, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'),
                                      recursive=True) if '_base_' not in p)


def test_every_config_gets_a_visualization_hook_that_writes_test_pictures():
    import vitamin_dense  # noqa: F401  (registers the hook)
    from vitamin_dense.registry import HOOKS
    assert len(CONFIGS) > 20
    for path in CONFIGS:
        cfg = load_config(path)
        kind = enable_show_dir(cfg, 'vis', score_thr=0.05)
        hook = cfg.default_hooks.visualization
        assert hook['draw'] is True and hook['test_out_dir'] == 'vis', path  # relative: mmdet's
        assert hook['score_thr'] == 0.05, path
        # ours (drawn as the demos draw), or mmdet's where a detection config names it
        assert kind in ('DenseVisualizationHook', 'DetVisualizationHook'), path
        if os.sep + 'ov_seg' + os.sep in path or os.sep + 'mmseg' + os.sep in path:
            assert kind == 'DenseVisualizationHook', path  # mmseg's hook cannot write them
        if kind == 'DenseVisualizationHook':
            assert HOOKS.get(hook['type'].split('.')[-1]) is not None


def _sample(tmp_path, **preds):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData, PixelData
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), np.uint8)
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, image[..., ::-1])
    sample = DetDataSample(metainfo=dict(img_path=path))
    if 'boxes' in preds:
        sample.pred_instances = InstanceData(bboxes=torch.tensor(preds['boxes'], dtype=torch.float),
                                             scores=torch.tensor(preds['scores']),
                                             labels=torch.tensor(preds['labels']))
    if 'sem' in preds:
        sample.pred_sem_seg = PixelData(sem_seg=torch.as_tensor(preds['sem'])[None])
    if 'pan' in preds:
        sample.pred_panoptic_seg = PixelData(sem_seg=torch.as_tensor(preds['pan'])[None])
    return image, sample


def test_hook_draws_boxes_above_its_score_cut_like_the_demo(tmp_path):
    from vitamin_dense.visualization import draw_detections
    from vitamin_dense.visualization.hook import DenseVisualizationHook
    boxes = [[5, 5, 40, 30], [30, 20, 70, 55]]
    image, sample = _sample(tmp_path, boxes=boxes, scores=[0.05, 0.4], labels=[0, 1])
    names = ['circle', 'square']
    picture = DenseVisualizationHook(score_thr=0.1).draw_sample(sample, names)
    expected = draw_detections(image, np.array(boxes[1:]), [1], np.array([0.4]), names,
                               title='img.png: boxes scoring >= 0.1')
    np.testing.assert_array_equal(picture, expected)
    everything = DenseVisualizationHook(score_thr=0.0).draw_sample(sample, names)
    assert not np.array_equal(everything, picture)


def test_hook_draws_semantic_and_panoptic_side_by_side(tmp_path):
    from vitamin_dense.visualization.hook import DenseVisualizationHook
    sem = np.zeros((60, 80), np.int64)
    sem[:, 40:] = 1
    pan = sem.copy()
    pan[10:20, 10:20] = 0 + 1 * 1000  # a thing instance of class 0
    pan[0, 0] = 2  # void (num_classes)
    image, sample = _sample(tmp_path, sem=sem, pan=pan)
    picture = DenseVisualizationHook().draw_sample(sample, ['circle', 'sky'])
    assert picture.shape[1] >= 2 * 256 and picture.dtype == np.uint8  # two panels, enlarged


def _run_test_tool(tmp_path, config, *extra):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'test.py'), config, 'none', '--work-dir',
         str(tmp_path / 'work'),
         '--show-dir', 'vis', *extra, '--cfg-options', f'data_root={tmp_path}/data/',
         'test_dataloader.dataset.generator.num_images=2'],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))


@pytest.mark.slow  # an end-to-end run in fresh processes (bash tools/run_tests.sh --all)
@pytest.mark.parametrize('config,extra', [
    ('configs/ov_seg/vitamin_tiny_synthetic.py', []),
    ('configs/ov_det/owl_vitamin_tiny_synthetic.py', ['--score-thr', '0']),
])
def test_show_dir_writes_pictures_under_work_dir_timestamp(tmp_path, config, extra):
    proc = _run_test_tool(tmp_path, os.path.join(ROOT, config), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = glob.glob(str(tmp_path / 'work' / '*' / 'vis' / '*.jpg'))
    assert sorted(os.path.basename(p) for p in found) == ['000000.jpg', '000001.jpg'], found
    assert not os.path.exists(tmp_path / 'vis')  # not in the current directory
    picture = cv2.imread(found[0])
    assert picture.shape[0] >= 256 and picture.shape[1] >= 256  # drawn readable, with a legend


def test_validation_pictures_go_to_the_visualizer_every_interval(tmp_path):
    from types import SimpleNamespace
    from vitamin_dense.visualization.hook import DenseVisualizationHook
    _, sample = _sample(tmp_path, boxes=[[5, 5, 40, 30]], scores=[0.5], labels=[0])
    shown = []
    visualizer = SimpleNamespace(dataset_meta=dict(classes=('circle',)),
                                 add_image=lambda name, image, step: shown.append((name, step)))
    runner = SimpleNamespace(iter=100, visualizer=visualizer)
    hook = DenseVisualizationHook(draw=True, interval=2)
    for batch_idx in range(4):
        hook.after_val_iter(runner, batch_idx, None, [sample])
    assert shown == [('val_img', 100), ('val_img', 102)]
    DenseVisualizationHook(draw=False).after_val_iter(runner, 0, None, [sample])
    assert len(shown) == 2
