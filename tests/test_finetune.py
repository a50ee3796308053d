"""Fine-tune on your own data: the configs/custom/ templates on a COCO-format set on disk.

A small COCO-format data set of synthetic shapes is written where the
templates expect one (``data/my_dataset/`` under the working directory), and
the tiny variants run through ``tools/train.py`` and ``tools/test.py`` as a
user would, setting nothing but the iteration count:

* detection (OWL): 'star' is held out of training; the trained checkpoint's
  box AP on the learned classes must be far above the untrained model's,
  while the held-out vocabulary is evaluated and reported (``heldout/...``
  keys in the training log's JSON and in tools/test.py's output), and the best
  checkpoint is kept by the harmonic mean (``best_hmean_iter_N.pth``);
* segmentation (FC-CLIP, COCO panoptic): trained a few iterations and
  evaluated, with the held-out vocabulary's PQ reported.

The fast tests check that every full-size template builds its data from the
same files, that setting ``heldout_ann_file = None`` in a copy turns the
held-out set off, that held-out classes never become pseudo-negatives, and
that two iterations of the tiny detection template through ``tools/train.py``
validate both sets, report ``heldout/...`` and ``hmean`` and keep
``best_hmean_iter_2.pth``.
"""
import glob
import json
import os
import re
import subprocess
import sys

import pytest

import vitamin_dense  # noqa: F401
from vitamin_dense.datasets.synthetic import SyntheticSpec, generate_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUSTOM = os.path.join(ROOT, 'configs', 'custom')
# easy shapes (as tests/test_det_learning.py): a short CPU run is enough to learn them
SHAPES = dict(image_size=128, min_size=0.25, max_size=0.45, max_instances=3, void_prob=0.0)
DET_CLASSES = ('circle', 'square', 'triangle', 'star')


def _write_data(cwd, num_train, num_val, **spec):
    """The user's data, where the templates look: data/my_dataset/ (COCO instances and
    panoptic files, images/{train,val}/)."""
    root = os.path.join(str(cwd), 'data', 'my_dataset')
    generate_split(root, 'train', SyntheticSpec(num_images=num_train, seed=0, **spec))
    generate_split(root, 'val', SyntheticSpec(num_images=num_val, seed=1, **spec))
    return root


def _run(cwd, tool, *args, timeout=900):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', tool), *args],
                          cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _metrics(stdout):
    """tools/test.py's last line: ``key=value key=value ...``."""
    line = stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in re.findall(r'(\S+)=(-?[\d.]+)', line)}


def _logged_val_metrics(work_dir):
    """The validation records of the training log's JSON (MMEngine's scalars.json)."""
    records = []
    for path in glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    return [r for r in records if 'hmean' in r]


# ----------------------------------------------------------------------- fast
TEMPLATES = ['owl_vitamin_l_instances.py', 'fvit_vitamin_l_instances.py',
             'fcclip_vitamin_l_panoptic.py', 'fcclip_vitamin_l_instances.py']


@pytest.mark.parametrize('name', TEMPLATES)
def test_templates_read_their_classes_from_the_files(tmp_path, monkeypatch, name):
    from mmengine.registry import init_default_scope
    from vitamin_dense.engine.config import load_config
    from vitamin_dense.registry import DATASETS
    _write_data(tmp_path, 3, 2, image_size=64, thing_classes=DET_CLASSES)
    monkeypatch.chdir(tmp_path)
    init_default_scope('vitamin_dense')
    cfg = load_config(os.path.join(CUSTOM, name))
    train = DATASETS.build(cfg.train_dataloader.dataset)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    things = DET_CLASSES
    assert train.metainfo['thing_classes'] == things and len(train) == 3 and len(val) == 2
    if 'panoptic' in name:
        assert train.metainfo['stuff_classes'] == ('sky', 'grass', 'water', 'sand', 'wall')
    # the held-out vocabulary is on by default, and chooses the best checkpoint with yours
    assert [e['prefix'] for e in cfg.val_cfg.extra_datasets] == ['heldout']
    assert cfg.test_cfg.extra_datasets == cfg.val_cfg.extra_datasets
    assert cfg.default_hooks.checkpoint.save_best == 'hmean'
    assert cfg.val_cfg.hmean_keys[1] == 'heldout/' + cfg.val_cfg.hmean_keys[0]


def test_a_copy_without_held_out_set_keeps_the_best_by_its_own_metric(tmp_path):
    from vitamin_dense.engine.config import load_config
    text = open(os.path.join(CUSTOM, 'owl_vitamin_l_instances.py')).read()
    text = re.sub(r"^heldout_ann_file = .*$", 'heldout_ann_file = None', text, flags=re.M)
    text = text.replace("'../_base_/", repr(os.path.join(ROOT, 'configs', '_base_'))[:-1] + '/')
    (tmp_path / 'mine.py').write_text(text)
    cfg = load_config(str(tmp_path / 'mine.py'))
    assert cfg.val_cfg.extra_datasets == [] and cfg.val_cfg.hmean_keys == []
    assert cfg.default_hooks.checkpoint.save_best == 'coco/bbox_mAP'


def test_held_out_classes_stay_out_of_training_and_of_the_pseudo_negatives(tmp_path,
                                                                           monkeypatch):
    from vitamin_dense.engine import VocabularyHook
    from vitamin_dense.engine.config import build_runner, load_config
    _write_data(tmp_path, 4, 2, thing_classes=DET_CLASSES, **SHAPES)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(os.path.join(CUSTOM, 'owl_vitamin_tiny_instances.py'),
                      {'work_dir': str(tmp_path / 'work')})
    runner = build_runner(cfg)
    assert runner.train_dataloader.dataset.metainfo['classes'] == DET_CLASSES[:3]
    loop = runner.val_loop   # built as runner.train() builds it
    assert loop.extra_sets[0].dataloader.dataset.metainfo['classes'] == ('star', )
    hook = next(h for h in runner.hooks if isinstance(h, VocabularyHook))
    hook.before_train(runner)
    model = runner.model
    pool = {n for c in model.negative_pool().classes for n in c}
    assert 'hexagon' in pool and 'star' not in pool
    assert [c[0] for c in model.train_vocabulary.classes] == list(DET_CLASSES[:3])
    assert [c[0] for c in model.test_vocabulary.classes] == list(DET_CLASSES[:3])


def test_two_iterations_through_train_py_report_the_held_out_set_and_keep_the_best(tmp_path):
    _write_data(tmp_path, 8, 3, thing_classes=DET_CLASSES, **SHAPES)
    config = os.path.join(CUSTOM, 'owl_vitamin_tiny_instances.py')
    work = tmp_path / 'work_dirs' / 'owl_vitamin_tiny_instances'
    out = _run(tmp_path, 'train.py', config, '--cfg-options', 'train_cfg.max_iters=2',
               'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
               'train_dataloader.batch_size=2')
    logged = _logged_val_metrics(str(work))
    assert len(logged) == 1
    assert {'coco/bbox_mAP', 'heldout/coco/bbox_mAP', 'heldout/coco/bbox_mAP_50',
            'hmean'} <= set(logged[0])
    # the held-out set was scored on its own class: 'star', on the 3 validation images
    logs = out + ''.join(open(p).read() for p in glob.glob(str(work / '*' / '*.log')))
    assert "held-out set 'heldout' (3 images)" in logs
    assert os.path.isfile(work / 'best_hmean_iter_2.pth')


# ----------------------------------------------------------------------- slow
DET_ITERS = 150


@pytest.mark.slow
def test_detection_fine_tuning_learns_and_reports_the_held_out_vocabulary(tmp_path):
    _write_data(tmp_path, 100, 24, thing_classes=DET_CLASSES, **SHAPES)
    config = os.path.join(CUSTOM, 'owl_vitamin_tiny_instances.py')
    work = tmp_path / 'work_dirs' / 'owl_vitamin_tiny_instances'
    _run(tmp_path, 'train.py', config, '--cfg-options', f'train_cfg.max_iters={DET_ITERS}',
         f'train_cfg.val_interval={DET_ITERS}', f'default_hooks.checkpoint.interval={DET_ITERS}',
         'param_scheduler.1.milestones=[120]')
    logged = _logged_val_metrics(str(work))
    assert logged and 'heldout/coco/bbox_mAP' in logged[-1] and 'coco/bbox_mAP' in logged[-1]
    best = glob.glob(str(work / 'best_hmean_iter_*.pth'))
    assert len(best) == 1

    untrained = _metrics(_run(tmp_path, 'test.py', config, 'none'))
    trained = _metrics(_run(tmp_path, 'test.py', config, best[0]))
    print(f"AP50 on the learned classes: untrained {untrained['coco/bbox_mAP_50']:.3f} -> "
          f"trained {trained['coco/bbox_mAP_50']:.3f}; held-out 'star' AP50 "
          f"{trained['heldout/coco/bbox_mAP_50']:.3f}; hmean {trained['hmean']:.3f}")
    assert trained['coco/bbox_mAP_50'] >= 0.1
    assert trained['coco/bbox_mAP_50'] >= 5 * untrained['coco/bbox_mAP_50'] + 0.05
    for metrics in (untrained, trained):
        assert {'heldout/coco/bbox_mAP', 'heldout/coco/bbox_mAP_50', 'hmean'} <= set(metrics)
    # the test of the best checkpoint repeats its validation
    assert trained['hmean'] == pytest.approx(logged[-1]['hmean'], abs=1e-3)


@pytest.mark.slow
def test_panoptic_fine_tuning_runs_and_reports_the_held_out_vocabulary(tmp_path):
    _write_data(tmp_path, 8, 4, image_size=96)
    config = os.path.join(CUSTOM, 'fcclip_vitamin_tiny_panoptic.py')
    work = tmp_path / 'work_dirs' / 'fcclip_vitamin_tiny_panoptic'
    _run(tmp_path, 'train.py', config, '--cfg-options', 'train_cfg.max_iters=10',
         'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=10')
    logged = _logged_val_metrics(str(work))
    assert logged and {'panoptic/PQ', 'sem_seg/mIoU', 'heldout/panoptic/PQ'} <= set(logged[-1])
    best = glob.glob(str(work / 'best_hmean_iter_10.pth'))
    metrics = _metrics(_run(tmp_path, 'test.py', config, best[0]))
    assert {'panoptic/PQ', 'heldout/panoptic/PQ', 'heldout/sem_seg/mIoU', 'hmean'} <= \
        set(metrics)
