"""Synthetic data: determinism, agreement of the three annotation formats with the
masks (checked with panopticapi and pycocotools), and loading through mmdet / mmseg."""
import filecmp
import json
import os
import os.path as osp
import runpy
import sys

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from panopticapi.utils import rgb2id
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from vitamin_dense.datasets import (DatasetError, SyntheticDetectionDataset,
                                    SyntheticPanopticDataset, SyntheticSemanticDataset,
                                    SyntheticSpec, ensure_synthetic, generate_split)
from vitamin_dense.datasets.synthetic import (DEFAULT_UNSEEN, META_FILE, category_id,
                                              render_sample, split_paths)
from vitamin_dense.registry import DATASETS
from vitamin_dense.text import parse_vocabulary

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SPEC = SyntheticSpec(num_images=12, image_size=96, seed=3, void_prob=0.5)


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('synthetic'))
    ensure_synthetic(path, 'val', SPEC)
    return path


def _load(path):
    with open(path) as f:
        return json.load(f)


def test_deterministic_and_independent_of_count(tmp_path, root):
    other = str(tmp_path / 'again')
    generate_split(other, 'val', SPEC)
    a, b = split_paths(root, 'val'), split_paths(other, 'val')
    for key in ('panoptic_json', 'instances_json'):
        assert filecmp.cmp(a[key], b[key], shallow=False)
    for key in ('img_dir', 'panoptic_dir', 'semantic_dir'):
        names = sorted(os.listdir(a[key]))
        assert names == sorted(os.listdir(b[key])) and len(names) == SPEC.num_images
        for name in names:
            assert filecmp.cmp(osp.join(a[key], name), osp.join(b[key], name), shallow=False)
    # an image depends on (seed, split, index) only, not on how many are made
    fewer = SyntheticSpec(num_images=3, image_size=96, seed=3, void_prob=0.5)
    for i in range(3):
        assert np.array_equal(render_sample(fewer, 'val', i).image,
                              render_sample(SPEC, 'val', i).image)
    # other seed or split: other images
    assert not np.array_equal(render_sample(SPEC, 'val', 0).image,
                              render_sample(SPEC, 'train', 0).image)
    reseeded = SyntheticSpec(num_images=12, image_size=96, seed=4, void_prob=0.5)
    assert not np.array_equal(render_sample(SPEC, 'val', 0).image,
                              render_sample(reseeded, 'val', 0).image)


def test_formats_agree_with_masks(root):
    paths = split_paths(root, 'val')
    pan = _load(paths['panoptic_json'])
    coco = COCO(paths['instances_json'])
    cats = {c['id']: c for c in pan['categories']}
    label_of = {c['id']: i for i, c in enumerate(pan['categories'])}
    assert [c['name'] for c in pan['categories']] == list(SPEC.classes)
    n_void = n_things = 0
    for ann in pan['annotations']:
        ids = rgb2id(cv2.imread(osp.join(paths['panoptic_dir'], ann['file_name']))[..., ::-1])
        sem = cv2.imread(osp.join(paths['semantic_dir'], ann['file_name']), cv2.IMREAD_UNCHANGED)
        assert sem.dtype == np.uint8 and sem.shape == ids.shape == (96, 96)
        listed = {s['id'] for s in ann['segments_info']}
        assert set(np.unique(ids)) - {0} == listed  # every PNG segment is in the JSON
        assert np.all((ids == 0) == (sem == 255))   # void agrees
        n_void += int((ids == 0).sum())
        inst = {a['segment_id']: a for a in coco.loadAnns(coco.getAnnIds(imgIds=ann['image_id']))}
        for seg in ann['segments_info']:
            mask = ids == seg['id']
            assert seg['area'] == mask.sum() > 0
            ys, xs = np.nonzero(mask)
            assert seg['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                   ys.max() - ys.min() + 1]
            assert np.all(sem[mask] == label_of[seg['category_id']])
            if cats[seg['category_id']]['isthing']:
                n_things += 1
                a = inst.pop(seg['id'])
                assert a['category_id'] == seg['category_id'] and a['bbox'] == seg['bbox']
                assert np.array_equal(coco.annToMask(a).astype(bool), mask)
                assert mask_utils.area(a['segmentation']) == a['area'] == seg['area']
                assert a['color'] == seg['color']
        assert not inst  # no instance without its panoptic segment
    assert n_void > 0 and n_things > 0


def test_panopticapi_scores_ground_truth_as_perfect(root, tmp_path):
    """panopticapi's own loader and checks accept the files (PQ of GT vs GT = 1)."""
    from panopticapi.evaluation import pq_compute
    paths = split_paths(root, 'val')
    result = pq_compute(paths['panoptic_json'], paths['panoptic_json'],
                        gt_folder=paths['panoptic_dir'], pred_folder=paths['panoptic_dir'])
    for key in ('All', 'Things', 'Stuff'):
        assert result[key]['pq'] == pytest.approx(1.0)


def test_holdout_split(tmp_path):
    spec = SyntheticSpec(num_images=20, image_size=64, holdout='default')
    assert spec.holdout == DEFAULT_UNSEEN
    paths = generate_split(str(tmp_path), 'train', spec)
    pan = _load(paths['panoptic_json'])
    names = [c['name'] for c in pan['categories']]
    assert not set(DEFAULT_UNSEEN) & set(names) and names == list(spec.classes)
    used = {s['category_id'] for a in pan['annotations'] for s in a['segments_info']}
    assert not used & {category_id(n) for n in DEFAULT_UNSEEN}
    # category ids are fixed by the catalogue: the same across splits
    assert all(c['id'] == category_id(c['name']) for c in pan['categories'])
    with pytest.raises(DatasetError, match='holdout'):
        SyntheticSpec(holdout=('unicorn',))
    with pytest.raises(DatasetError, match='unknown synthetic class'):
        SyntheticSpec(thing_classes=('blob',))


def test_vocabulary_has_synonyms():
    vocab = parse_vocabulary('dataset:synthetic')
    assert vocab.names == list(SyntheticSpec().classes)
    assert ('ring', 'annulus', 'hoop') in vocab.classes
    seen = parse_vocabulary('dataset:synthetic_seen')
    assert seen.names == list(SyntheticSpec(holdout='default').classes)


def test_loads_through_mmdet_and_mmseg(root):
    init_default_scope('vitamin_dense')
    gen = SPEC.to_json()
    gen.pop('generator_version')
    pan = SyntheticPanopticDataset(
        data_root=root, split='val', generator=gen, test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'), dict(type='mmdet.LoadPanopticAnnotations'),
                  dict(type='mmdet.PackDetInputs')])
    assert pan.metainfo['classes'] == SPEC.classes
    assert len(pan.metainfo['synonyms']) == len(SPEC.classes)
    sem_png = cv2.imread(osp.join(root, 'annotations/semantic_val/000000.png'),
                         cv2.IMREAD_UNCHANGED)
    sample = pan[0]['data_samples']
    assert np.array_equal(sample.gt_sem_seg.sem_seg[0].numpy(), sem_png)
    masks = sample.gt_instances.masks.to_ndarray()
    for mask, label in zip(masks, sample.gt_instances.labels.tolist()):
        assert label < len(SPEC.split_things)
        assert np.all(sem_png[mask.astype(bool)] == label)

    det = SyntheticDetectionDataset(
        data_root=root, split='val', generator=gen, test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=True),
                  dict(type='mmdet.PackDetInputs')])
    assert det.metainfo['classes'] == SPEC.split_things
    dsample = det[0]['data_samples']
    assert np.array_equal(dsample.gt_instances.masks.to_ndarray().sum(0) > 0,
                          masks.sum(0) > 0)

    sem = SyntheticSemanticDataset(
        data_root=root, split='val', generator=gen, test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'), dict(type='mmseg.LoadAnnotations'),
                  dict(type='mmseg.PackSegInputs')])
    assert np.array_equal(sem[0]['data_samples'].gt_sem_seg.data[0].numpy(), sem_png)
    assert len(sem) == len(pan) == len(det) == SPEC.num_images


@pytest.mark.parametrize('name', ['synthetic_panoptic', 'synthetic_detection'])
def test_base_configs_build(name, tmp_path):
    init_default_scope('vitamin_dense')
    cfg = Config.fromfile(osp.join(REPO, f'configs/_base_/datasets/{name}.py'))
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key].dataset.data_root = str(tmp_path)
        cfg[key].dataset.generator.num_images = 4
        ds = DATASETS.build(cfg[key].dataset)
        item = ds[0]
        assert item['inputs'].shape[0] == 3 and len(item['data_samples'].gt_instances) > 0


def test_generate_on_first_use_and_errors(tmp_path):
    gen = dict(num_images=2, image_size=64)
    with pytest.raises(DatasetError, match=r'missing .*images/val \(data_root .* does not exist\)'):
        SyntheticPanopticDataset(data_root=str(tmp_path / 'absent'), split='val', generator=gen,
                                 generate=False)
    root = str(tmp_path / 'made')
    SyntheticPanopticDataset(data_root=root, split='val', generator=gen)
    assert 'val' in _load(osp.join(root, META_FILE))['splits']
    stamp = os.path.getmtime(osp.join(root, 'annotations/panoptic_val.json'))
    SyntheticPanopticDataset(data_root=root, split='val', generator=gen)  # reused
    assert os.path.getmtime(osp.join(root, 'annotations/panoptic_val.json')) == stamp
    SyntheticPanopticDataset(data_root=root, split='val', generator={**gen, 'num_images': 3})
    assert len(os.listdir(osp.join(root, 'images/val'))) == 3  # regenerated, old files gone
    foreign = tmp_path / 'foreign'
    (foreign / 'images' / 'val').mkdir(parents=True)
    with pytest.raises(DatasetError, match='not a synthetic data root'):
        ensure_synthetic(str(foreign), 'val', SyntheticSpec(**gen))


def test_cli(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / 'cli')
    monkeypatch.setattr(sys, 'argv', ['make_synthetic.py', out, '--splits', 'train:3,val:2',
                                      '--image-size', '48', '64', '--holdout', 'default'])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(osp.join(REPO, 'tools/make_synthetic.py'), run_name='__main__')
    assert exit_info.value.code == 0
    meta = _load(osp.join(out, META_FILE))['splits']
    assert meta['train']['holdout'] == list(DEFAULT_UNSEEN) and meta['val']['holdout'] == []
    assert cv2.imread(osp.join(out, 'images/train/000002.jpg')).shape == (48, 64, 3)
    monkeypatch.setattr(sys, 'argv', ['make_synthetic.py', out, '--splits', 'val'])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(osp.join(REPO, 'tools/make_synthetic.py'), run_name='__main__')
    assert exit_info.value.code == 2
    assert 'error: bad --splits entry' in capsys.readouterr().err
