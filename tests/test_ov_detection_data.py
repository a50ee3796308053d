"""OV-COCO / OV-LVIS data sets: splits, label mapping, filtering, errors, configs."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import vitamin_dense  # noqa: F401  (registers everything)
from vitamin_dense.datasets import (OV_COCO_BASE_CLASSES, OV_COCO_NOVEL_CLASSES, DatasetError,
                                    DatasetFileError, OVCocoDataset, OVLVISDataset,
                                    ov_coco_classes)
from vitamin_dense.datasets.ov_splits import coco_classes, dedupe_synonyms, lvis_v1_classes
from vitamin_dense.errors import VitaminDenseError
from vitamin_dense.registry import DATASETS
from vitamin_dense.text import parse_vocabulary

from ov_detection_fakes import (LVIS_FAKE_CATEGORIES, filter_like_ovrcnn, write_fake_coco,
                                write_fake_lvis)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    _, train = write_fake_coco(root, 'train2017', num_images=8, seed=1)
    _, val = write_fake_coco(root, 'val2017', num_images=6, seed=2)
    return root, train, val


@pytest.fixture(scope='module')
def lvis_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('lvis'))
    _, train = write_fake_lvis(root, 'train2017', num_images=8, seed=3)
    _, val = write_fake_lvis(root, 'val2017', num_images=6, seed=4)
    return root, train, val


# serialize_data=False: mmengine's serialisation runs gc.collect(), ~0.5 s per data set here
def _coco(root, split='val2017', **kwargs):
    kwargs.setdefault('ann_file', f'annotations/instances_{split}.json')
    kwargs.setdefault('serialize_data', False)
    return OVCocoDataset(data_root=root, data_prefix=dict(img=f'{split}/'), **kwargs)


def _lvis(root, split='val2017', **kwargs):
    kwargs.setdefault('serialize_data', False)
    return OVLVISDataset(data_root=root, ann_file=f'annotations/lvis_v1_{split[:-4]}.json',
                         data_prefix=dict(img=''), **kwargs)


# ---------------------------------------------------------------------------- splits
def test_ov_coco_split_is_the_published_one():
    classes = ov_coco_classes()
    assert len(classes) == 65 and len(OV_COCO_BASE_CLASSES) == 48
    assert len(OV_COCO_NOVEL_CLASSES) == 17
    assert not set(OV_COCO_BASE_CLASSES) & set(OV_COCO_NOVEL_CLASSES)
    assert set(classes) == set(OV_COCO_BASE_CLASSES) | set(OV_COCO_NOVEL_CLASSES)
    assert list(classes) == [c for c in coco_classes() if c in set(classes)]  # COCO order
    left_out = set(coco_classes()) - set(classes)
    assert {'traffic light', 'hot dog', 'teddy bear', 'dining table'} <= left_out
    assert len(left_out) == 15


def test_builtin_vocabularies():
    assert parse_vocabulary('dataset:coco').names == list(coco_classes())
    assert parse_vocabulary('dataset:ov_coco').names == list(ov_coco_classes())
    assert parse_vocabulary('dataset:ov_coco_novel').names == list(OV_COCO_NOVEL_CLASSES)
    assert parse_vocabulary('dataset:ov_coco_base').names == list(OV_COCO_BASE_CLASSES)
    lvis = parse_vocabulary('dataset:lvis')
    assert len(lvis) == 1203 and lvis.names == list(lvis_v1_classes())


def test_registered_in_our_and_mmdet_registries():
    from mmdet.registry import DATASETS as MMDET_DATASETS
    from mmdet.registry import METRICS as MMDET_METRICS
    from vitamin_dense.evaluation import OVCocoMetric, OVLVISMetric
    from vitamin_dense.registry import METRICS
    for registry in (DATASETS, MMDET_DATASETS):  # stock mmdet configs can name them too
        assert registry.get('OVCocoDataset') is OVCocoDataset
        assert registry.get('OVLVISDataset') is OVLVISDataset
    for registry in (METRICS, MMDET_METRICS):
        assert registry.get('OVLVISMetric') is OVLVISMetric
    assert METRICS.get('OVCocoMetric') is OVCocoMetric
    # mmdet 3.3 has its own OVCocoMetric: it stays, ours is reached with the scope prefix
    assert MMDET_METRICS.get('OVCocoMetric') is not OVCocoMetric
    assert MMDET_METRICS.get('vitamin_dense.OVCocoMetric') is OVCocoMetric


def test_dedupe_synonyms_keeps_display_names_and_drops_clashes():
    out = dedupe_synonyms([('cat', 'kitty', 'Cat'), ('dog', 'kitty', 'cat', 'hound'), ('kitty',)])
    assert out == (('cat',), ('dog', 'hound'), ('kitty',))
    parse_vocabulary(list(out))  # a valid vocabulary (no duplicated names)


# ---------------------------------------------------------------------------- OV-COCO
def test_ov_coco_eval_set_matches_ovrcnn_all_file(coco_root):
    root, _, val = coco_root
    ds = _coco(root, class_subset='all', test_mode=True)
    meta = ds.metainfo
    assert meta['classes'] == ov_coco_classes()
    assert len(meta['palette']) == 65 and len(meta['synonyms']) == 65
    assert meta['synonyms'][0] == ('person',)
    assert meta['novel_classes'] == OV_COCO_NOVEL_CLASSES
    assert meta['base_classes'] == OV_COCO_BASE_CLASSES
    assert sum(meta['is_novel']) == 17 and len(meta['base_labels']) == 48
    assert [meta['classes'][i] for i in meta['novel_labels']] == list(OV_COCO_NOVEL_CLASSES)

    # the images and boxes are those of OVR-CNN's instances_val2017_all_2.json
    ref = filter_like_ovrcnn(val, ov_coco_classes())
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == \
        [i['id'] for i in ref['images']]
    name_of = {c['id']: c['name'] for c in val['categories']}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        want = sorted((name_of[a['category_id']], a['iscrowd']) for a in ref['annotations']
                      if a['image_id'] == info['img_id'] and a['bbox'][2] >= 1)
        got = sorted((meta['classes'][x['bbox_label']], x['ignore_flag'])
                     for x in info['instances'])
        assert got == want
        assert osp.isfile(info['img_path'])


def test_ov_coco_base_training_drops_novel_and_outside_classes(coco_root):
    root, train, _ = coco_root
    ds = _coco(root, 'train2017', class_subset='base',
               filter_cfg=dict(filter_empty_gt=True, min_size=32))
    novel = set(ds.metainfo['novel_labels'])
    labels = [x['bbox_label'] for i in range(len(ds)) for x in ds.get_data_info(i)['instances']]
    assert labels and not novel & set(labels)
    assert all(0 <= lab < 65 for lab in labels)
    base_ids = {c['id'] for c in train['categories'] if c['name'] in OV_COCO_BASE_CLASSES}
    with_base = {a['image_id'] for a in train['annotations'] if a['category_id'] in base_ids
                 and not a['iscrowd']}
    assert {ds.get_data_info(i)['img_id'] for i in range(len(ds))} == with_base
    # image 1 of the fake file has only novel boxes, image 0 only classes outside OV-COCO
    assert train['images'][0]['id'] not in with_base and train['images'][1]['id'] not in with_base


def test_ov_coco_ovrcnn_seen_file_gives_the_same_labels(coco_root, tmp_path):
    root, train, _ = coco_root
    seen = filter_like_ovrcnn(train, OV_COCO_BASE_CLASSES)  # 48 categories only
    assert len(seen['categories']) == 48 - len(set(OV_COCO_BASE_CLASSES) -
                                               {c['name'] for c in train['categories']})
    path = tmp_path / 'instances_train2017_seen_2.json'
    path.write_text(json.dumps(seen))
    full = _coco(root, 'train2017', class_subset='base')
    ovr = _coco(root, 'train2017', class_subset='base', ann_file=str(path))
    assert len(full) == len(ovr)
    for i in range(len(full)):
        a, b = full.get_data_info(i), ovr.get_data_info(i)
        assert a['img_id'] == b['img_id']
        assert [x['bbox_label'] for x in a['instances']] == \
            [x['bbox_label'] for x in b['instances']]
    # the seen file lacks the novel categories: evaluating 'all' on it is a clear error
    with pytest.raises(DatasetError, match="no category 'airplane'"):
        _coco(root, 'train2017', class_subset='all', ann_file=str(path))


def test_ov_coco_custom_classes_and_novel_override(coco_root):
    root, _, _ = coco_root
    ds = _coco(root, metainfo=dict(classes=('person', 'cat', 'dog', 'car')),
               novel_classes=('dog',), class_subset='all', test_mode=True)
    meta = ds.metainfo
    assert meta['is_novel'] == (False, False, True, False)
    assert len(meta['palette']) == 4
    labels = {x['bbox_label'] for i in range(len(ds)) for x in ds.get_data_info(i)['instances']}
    assert labels <= {0, 1, 2, 3}
    with pytest.raises(DatasetError, match='not among'):
        _coco(root, novel_classes=('zebra crossing',))


def test_ov_coco_pipelines_from_config(coco_root):
    root, _, _ = coco_root
    init_default_scope('vitamin_dense')
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets/ov_coco_detection.py'))
    assert cfg.train_dataloader.dataset.class_subset == 'base'
    for loader, test_mode in ((cfg.train_dataloader, False), (cfg.val_dataloader, True)):
        ds_cfg = loader.dataset.copy()
        ds_cfg.data_root = root
        ds_cfg.serialize_data = False
        ds = DATASETS.build(ds_cfg)
        assert ds.test_mode == test_mode and len(ds) > 0
        sample = ds[0]
        shape = sample['inputs'].shape
        if test_mode:
            assert max(shape[1:]) == 896  # longer side resized to 896
            assert sample['data_samples'].ori_shape == (ds.get_data_info(0)['height'],
                                                        ds.get_data_info(0)['width'])
        else:
            assert max(shape[1:]) <= 896  # large-scale jitter crop
            labels = sample['data_samples'].gt_instances.labels.tolist()
            assert not set(labels) & set(ds.metainfo['novel_labels'])


# ---------------------------------------------------------------------------- OV-LVIS
def test_ov_lvis_split_comes_from_the_json(lvis_root):
    root, _, val = lvis_root
    ds = _lvis(root, class_subset='all', test_mode=True)
    meta = ds.metainfo
    assert meta['classes'] == tuple(n for n, _, _ in LVIS_FAKE_CATEGORIES)
    assert meta['frequencies'] == tuple(f for _, f, _ in LVIS_FAKE_CATEGORIES)
    assert meta['novel_classes'] == ('bat_(animal)', 'bagpipe', 'beanbag')
    assert meta['is_novel'] == tuple(f == 'r' for _, f, _ in LVIS_FAKE_CATEGORIES)
    assert meta['synonyms'][0] == ('aerosol_can', 'spray_can')
    assert meta['synonyms'][7] == ('cat', 'kitty') and meta['synonyms'][8] == ('dog',)
    parse_vocabulary(list(meta['synonyms']))  # usable as a vocabulary as is
    assert len(meta['palette']) == len(meta['classes'])
    # the json's image counts (federated negatives of the OWL detector are drawn by them)
    assert meta['image_counts'] == tuple(c['image_count'] for c in sorted(
        val['categories'], key=lambda c: c['id']))
    assert len(ds) == len(val['images'])  # evaluation keeps images without boxes

    label_of = {c['id']: i for i, c in enumerate(val['categories'])}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        img = next(im for im in val['images'] if im['id'] == info['img_id'])
        assert info['img_path'] == osp.join(root, 'val2017', f"{img['id']:012d}.jpg")
        assert info['neg_labels'] == sorted(label_of[c] for c in img['neg_category_ids'])
        assert info['not_exhaustive_labels'] == \
            sorted(label_of[c] for c in img['not_exhaustive_category_ids'])
        want = sorted(label_of[a['category_id']] for a in val['annotations']
                      if a['image_id'] == img['id'])
        assert sorted(x['bbox_label'] for x in info['instances']) == want


def test_ov_lvis_base_training_drops_rare(lvis_root):
    root, train, _ = lvis_root
    ds = _lvis(root, 'train2017', class_subset='base',
               filter_cfg=dict(filter_empty_gt=True))
    rare = set(ds.metainfo['novel_labels'])
    assert rare == {2, 3, 5}
    labels = [x['bbox_label'] for i in range(len(ds)) for x in ds.get_data_info(i)['instances']]
    assert labels and not rare & set(labels)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['instances']  # images left without boxes are filtered
        assert not rare & set(info['neg_labels'])  # no novel supervision through negatives
    assert train['images'][1]['id'] not in {ds.get_data_info(i)['img_id'] for i in range(len(ds))}
    # novel_frequencies widens the novel set
    ds_rc = _lvis(root, 'train2017', class_subset='base', novel_frequencies=('r', 'c'))
    assert set(ds_rc.metainfo['novel_classes']) == {'aerosol_can', 'bat_(animal)', 'bagpipe',
                                                    'beanbag', 'gargoyle'}


def test_ov_lvis_config_builds_with_class_balanced_sampling(lvis_root):
    root, _, _ = lvis_root
    init_default_scope('vitamin_dense')
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets/ov_lvis_instance.py'))
    train_cfg = cfg.train_dataloader.dataset
    assert train_cfg.type == 'ClassBalancedDataset'
    train_cfg.dataset.data_root = root
    train_cfg.dataset.serialize_data = False
    ds = DATASETS.build(train_cfg)
    assert len(ds) >= len(ds.dataset) > 0
    sample = ds[0]
    assert sample['data_samples'].gt_instances.masks.masks.shape[0] == \
        len(sample['data_samples'].gt_instances.labels)
    val_cfg = cfg.val_dataloader.dataset
    val_cfg.data_root = root
    val_cfg.serialize_data = False
    val = DATASETS.build(val_cfg)
    assert val[0]['data_samples'].gt_instances.masks is not None
    assert cfg.val_evaluator.metric == ['bbox', 'segm']


# ---------------------------------------------------------------------------- errors
def test_missing_files_fail_at_construction_with_one_line(coco_root, lvis_root, tmp_path):
    root, _, _ = coco_root
    with pytest.raises(DatasetFileError) as err:
        _coco(str(tmp_path / 'nowhere'))
    msg = str(err.value)
    assert 'instances_val2017.json' in msg and 'expected layout' in msg and '\n' not in msg
    assert isinstance(err.value, VitaminDenseError)

    with pytest.raises(DatasetFileError, match='image not found') as err:
        OVCocoDataset(data_root=root, ann_file='annotations/instances_val2017.json',
                      data_prefix=dict(img='val2014/'), serialize_data=False)
    assert 'val2014' in str(err.value) and 'does not exist' in str(err.value)

    with pytest.raises(DatasetFileError, match='lvis_v1_val.json'):
        _lvis(str(tmp_path / 'nowhere'))

    bad = tmp_path / 'annotations' / 'lvis_v1_val.json'
    bad.parent.mkdir(parents=True)
    bad.write_text('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "x"}]}')
    with pytest.raises(DatasetError, match="no LVIS 'frequency'"):
        _lvis(str(tmp_path))
    bad.write_text('not json')
    with pytest.raises(DatasetError, match='not a valid LVIS annotation file'):
        _lvis(str(tmp_path))
    with pytest.raises(DatasetError, match='class_subset'):
        _coco(root, class_subset='seen')


def test_lazy_init_defers_file_checks_but_keeps_the_split(tmp_path):
    ds = _coco(str(tmp_path), lazy_init=True)
    assert len(ds.metainfo['novel_classes']) == 17
    with pytest.raises(DatasetFileError):
        ds.full_init()
    assert np.sum(ds.metainfo['is_novel']) == 17
