"""One setting moves a data set; a missing file is reported before the model is built;
the tiny configs keep their synthetic splits apart."""
import glob
import logging
import os
import subprocess
import sys

import pytest

from vitamin_dense.engine.config import check_data_files, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, 'configs')
OWL_TINY = os.path.join(CFG, 'ov_det', 'owl_vitamin_tiny_synthetic.py')
FVIT_TINY = os.path.join(CFG, 'ov_det', 'fvit_vitamin_tiny_synthetic.py')
SEG_TINY = os.path.join(CFG, 'ov_seg', 'vitamin_tiny_synthetic.py')
OWL_COCO = os.path.join(CFG, 'ov_det', 'owl_vitamin_l_ovcoco.py')
SEG_COCO = os.path.join(CFG, 'ov_seg', 'vitamin_l_coco.py')


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def test_data_root_moves_dataloaders_and_evaluators(tmp_path):
    new = str(tmp_path / 'elsewhere')
    for path, old in ((FVIT_TINY, 'data/synthetic_fvit'), (OWL_COCO, 'data/coco')):
        cfg = load_config(path, {'data_root': new})
        for section in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            assert cfg[section].dataset.data_root.rstrip('/') == new, (path, section)
        for section in ('val_evaluator', 'test_evaluator'):
            assert cfg[section].ann_file.startswith(new + '/'), (path, cfg[section].ann_file)
        data = [cfg.to_dict()[k] for k in ('train_dataloader', 'val_dataloader',
                                           'test_dataloader', 'val_evaluator', 'test_evaluator')]
        assert not [s for s in _strings(data) if s.startswith(old)], path


def test_a_dataloaders_root_takes_its_evaluator_along(tmp_path):
    """The issue's attempt: overriding the test dataloader's data_root used to leave the
    evaluator's ann_file behind (and fail after the whole evaluation)."""
    new = str(tmp_path / 'mine')
    cfg = load_config(FVIT_TINY, {'test_dataloader.dataset.data_root': new})
    assert cfg.test_evaluator.ann_file == os.path.join(new, 'annotations/instances_val.json')
    assert cfg.val_evaluator.ann_file.startswith('data/synthetic_fvit/')  # other split untouched
    check_data_files(cfg, ['test'])  # generated on first use: nothing missing


def test_each_top_level_root_moves_its_own_data(tmp_path):
    """vitamin_l_coco trains on COCO (coco_root) and evaluates on ADE20K (data_root)."""
    cfg = load_config(SEG_COCO, {'coco_root': str(tmp_path / 'coco')})
    assert cfg.train_dataloader.dataset.data_root.startswith(str(tmp_path / 'coco'))
    assert cfg.test_dataloader.dataset.data_root.startswith('data/ADEChallengeData2016')


def test_missing_data_is_reported_with_its_layout_before_the_model_is_built(tmp_path):
    """The OV-COCO recipe builds ViTamin-L with downloaded weights: reaching the model
    would end in a weights error, so the data error proves the order."""
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1')
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', OWL_COCO, 'none', '--work-dir', str(tmp_path / 'w'),
         '--cfg-options', f'data_root={tmp_path}/coco/'], capture_output=True, text=True,
        timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith('error: test_dataloader.dataset (OVCocoDataset): data_root '
                                f'{tmp_path}/coco/ does not exist'), proc.stderr[-2000:]
    assert 'instances_{train,val}2017.json' in lines[-1]  # the expected layout
    assert 'Traceback' not in proc.stderr and 'weights' not in lines[-1]


def test_missing_evaluator_file_is_named(tmp_path):
    os.makedirs(tmp_path / 'coco' / 'annotations')
    (tmp_path / 'coco' / 'annotations' / 'instances_val2017.json').write_text('{}')
    os.makedirs(tmp_path / 'coco' / 'val2017')
    cfg = load_config(OWL_COCO, {'data_root': f'{tmp_path}/coco/',
                                 'test_evaluator.ann_file': f'{tmp_path}/gone.json'})
    from vitamin_dense.datasets import DatasetFileError
    with pytest.raises(DatasetFileError, match='test_evaluator .*gone.json does not exist'):
        check_data_files(cfg, ['test'])


def test_tiny_configs_keep_their_synthetic_splits_apart():
    """Two configs may share a synthetic data root only with identical split parameters:
    otherwise running one regenerates the split another was evaluated on."""
    from vitamin_dense.datasets import SyntheticSpec
    tiny = sorted(set(glob.glob(os.path.join(CFG, 'ov_*', '*synthetic*.py'))))
    assert len(tiny) >= 3
    seen = {}
    for path in tiny:
        cfg = load_config(path)
        for section in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            dataset = cfg[section].dataset
            key = (os.path.abspath(dataset.data_root), dataset.split)
            spec = SyntheticSpec(**dataset.generator).to_json()
            other = seen.setdefault(key, (path, spec))
            assert other[1] == spec, f'{path} and {other[0]} write different {key}'


def test_regenerating_a_split_with_other_parameters_is_announced(tmp_path, caplog):
    from vitamin_dense.datasets import SyntheticSpec, ensure_synthetic
    ensure_synthetic(str(tmp_path), 'val', SyntheticSpec(num_images=2, image_size=32, seed=0))
    caplog.set_level(logging.WARNING)
    ensure_synthetic(str(tmp_path), 'val', SyntheticSpec(num_images=2, image_size=32, seed=1))
    warned = [r.getMessage() for r in caplog.records if 'other parameters' in r.getMessage()]
    assert len(warned) == 1 and 'seed: 0 -> 1' in warned[0], warned
