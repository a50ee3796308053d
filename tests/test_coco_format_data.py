"""Your own COCO-format files: classes from the categories, held-out classes, synonyms.

``CocoFormatDataset`` / ``CocoFormatPanopticDataset`` take their class list
from the annotation file (no class names in the config), match categories to
labels by name whatever their ids or order, keep a category out when asked
(the held-out vocabulary), add synonyms from the file and the config, and stop
with one line on a wrong file or name. ``OpenVocabCocoMetric`` scores only the
images a data set evaluated (``indices``), so a held-out subset is not counted
as missed.
"""
import json
import os

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

import vitamin_dense  # noqa: F401
from vitamin_dense.datasets.errors import DatasetError, DatasetFileError
from vitamin_dense.datasets.synthetic import SyntheticSpec, generate_split
from vitamin_dense.registry import DATASETS, METRICS
from vitamin_dense.text import vocabulary_from_metainfo

# category ids neither 1..K nor sorted, file order != alphabetical
CATEGORIES = [dict(id=7, name='hard_hat', synonyms=['helmet']), dict(id=3, name='forklift'),
              dict(id=12, name='pallet')]


def _write_instances(root, n_images=3):
    os.makedirs(root / 'img', exist_ok=True)
    images, anns = [], []
    for i in range(n_images):
        cv2.imwrite(str(root / 'img' / f'{i}.jpg'), np.full((40, 60, 3), 50 * i, np.uint8))
        images.append(dict(id=100 + i, file_name=f'{i}.jpg', height=40, width=60))
        for k, cat in enumerate(CATEGORIES):
            anns.append(dict(id=len(anns) + 1, image_id=100 + i, category_id=cat['id'],
                             bbox=[5 + 10 * k, 5, 8, 10], area=80, iscrowd=0))
    (root / 'ann.json').write_text(json.dumps(dict(images=images, annotations=anns,
                                                   categories=CATEGORIES)))


def _build(root, **kwargs):
    cfg = dict(type='CocoFormatDataset', data_root=str(root), ann_file='ann.json',
               data_prefix=dict(img='img/'), pipeline=[])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_classes_come_from_the_categories_and_labels_follow_them(tmp_path):
    _write_instances(tmp_path)
    ds = _build(tmp_path)
    assert ds.metainfo['classes'] == ('hard_hat', 'forklift', 'pallet')
    assert ds.metainfo['thing_classes'] == ds.metainfo['classes']
    labels = [inst['bbox_label'] for inst in ds[0]['instances']]
    assert labels == [0, 1, 2]   # annotation k has category CATEGORIES[k]
    # prompts: underscores read as spaces, the file's own synonyms kept
    vocab = vocabulary_from_metainfo(ds.metainfo)
    assert vocab.classes[0] == ('hard hat', 'helmet')

    # a subset in another order (mmdet's metainfo convention), matched by name
    ds = _build(tmp_path, metainfo=dict(classes=('pallet', 'hard_hat')))
    assert ds.metainfo['classes'] == ('pallet', 'hard_hat')
    first = {inst['bbox'][0]: inst['bbox_label'] for inst in ds[0]['instances']}
    assert first == {25.0: 0, 5.0: 1}   # pallet boxes are label 0, hard hats label 1


def test_excluded_classes_are_dropped_and_synonyms_added(tmp_path, caplog):
    _write_instances(tmp_path)
    ds = _build(tmp_path, exclude_classes=('forklift', ),
                synonyms={'pallet': ['skid', 'helmet'], 'hard_hat': 'safety helmet'})
    assert ds.metainfo['classes'] == ('hard_hat', 'pallet')
    assert all(len(ds[i]['instances']) == 2 for i in range(len(ds)))
    # 'helmet' already names the hard hat (the file's synonym): dropped from pallet
    assert ds.metainfo['vocabulary'] == (('hard hat', 'helmet', 'safety helmet'),
                                         ('pallet', 'skid'))
    assert 'already names class' in caplog.text

    vocab_file = tmp_path / 'names.txt'
    vocab_file.write_text('forklift, lift truck\n')
    ds = _build(tmp_path, synonyms=str(vocab_file))
    assert ds.metainfo['vocabulary'][1] == ('forklift', 'lift truck')


@pytest.mark.parametrize('change, error, message', [
    (dict(exclude_classes=('crane', )), DatasetError, "has no category 'crane'"),
    (dict(metainfo=dict(classes=('pallet', 'Pallets'))), DatasetError, "'Pallets'"),
    (dict(synonyms={'crane': ['x']}), DatasetError, "synonyms name 'crane'"),
    (dict(exclude_classes=('hard_hat', 'forklift', 'pallet')), DatasetError, 'no class left'),
    (dict(ann_file='missing.json'), DatasetFileError, 'missing .*missing.json'),
    (dict(data_prefix=dict(img='images/')), DatasetFileError, 'missing .*images'),
])
def test_wrong_names_and_paths_stop_with_one_line(tmp_path, change, error, message):
    _write_instances(tmp_path)
    with pytest.raises(error, match=message) as info:
        _build(tmp_path, **change)
    assert '\n' not in str(info.value)


def test_bad_files_stop_with_one_line(tmp_path):
    _write_instances(tmp_path)
    (tmp_path / 'img2').mkdir()
    with pytest.raises(DatasetError, match='image not found: .*img2/0.jpg'):
        _build(tmp_path, data_prefix=dict(img='img2/'))
    data = json.loads((tmp_path / 'ann.json').read_text())
    for categories, message in (([], 'has no categories'),
                                (CATEGORIES + [dict(id=99, name='pallet')],
                                 "two categories have the name 'pallet'")):
        (tmp_path / 'bad.json').write_text(json.dumps(dict(data, categories=categories)))
        with pytest.raises(DatasetError, match=message):
            _build(tmp_path, ann_file='bad.json')
    (tmp_path / 'bad.json').write_text('{"images": [')
    with pytest.raises(DatasetError, match='not a readable COCO json'):
        _build(tmp_path, ann_file='bad.json')


def test_panoptic_things_first_and_held_out_classes_void(tmp_path):
    generate_split(str(tmp_path), 'train', SyntheticSpec(num_images=3, image_size=48, seed=0))
    cfg = dict(type='CocoFormatPanopticDataset', data_root=str(tmp_path),
               ann_file='annotations/panoptic_train.json',
               data_prefix=dict(img='images/train/', seg='annotations/panoptic_train/'),
               pipeline=[])
    ds = DATASETS.build(dict(cfg, exclude_classes=('sand', 'star')))
    meta = ds.metainfo
    assert meta['thing_classes'] == ('circle', 'square', 'triangle', 'ring', 'cross')
    assert meta['stuff_classes'] == ('sky', 'grass', 'water', 'wall')
    assert meta['classes'] == meta['thing_classes'] + meta['stuff_classes']
    # the file's category synonyms (the generator writes them) are prompted
    assert meta['vocabulary'][0] == ('circle', 'disk', 'round shape')
    raw = json.loads((tmp_path / 'annotations/panoptic_train.json').read_text())
    held_out = {c['id'] for c in raw['categories'] if c['name'] in ('sand', 'star')}
    for i in range(len(ds)):
        ids = {s['id'] for s in ds[i]['segments_info']}
        segs = {s['id']: s['category_id']
                for s in raw['annotations'][i]['segments_info']}
        assert ids == {k for k, c in segs.items() if c not in held_out}   # the rest is void
    # a held-out class list on the same file: stuff after things whatever the order given
    ds = DATASETS.build(dict(cfg, metainfo=dict(classes=('sand', 'star'))))
    assert ds.metainfo['classes'] == ('star', 'sand')
    raw['categories'][0].pop('isthing')
    (tmp_path / 'bad.json').write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match='no "isthing"'):
        DATASETS.build(dict(cfg, ann_file='bad.json'))


def test_box_ap_scores_only_the_evaluated_images(tmp_path):
    """A held-out subset (``indices``) with perfect boxes scores AP 1, not 1/3."""
    _write_instances(tmp_path)
    ds = _build(tmp_path, indices=1, test_mode=True)
    metric = METRICS.build(dict(type='OpenVocabCocoMetric', metric='bbox',
                                ann_file=str(tmp_path / 'ann.json')))
    metric.dataset_meta = ds.metainfo
    info = ds[0]
    boxes = torch.tensor([inst['bbox'] for inst in info['instances']], dtype=torch.float32)
    pred = InstanceData(bboxes=boxes, scores=torch.ones(len(boxes)),
                        labels=torch.tensor([inst['bbox_label'] for inst in info['instances']]))
    sample = dict(img_id=info['img_id'], ori_shape=(40, 60), pred_instances=pred)
    metric.process({}, [sample])
    result = metric.evaluate(1)
    assert result['coco/bbox_mAP'] == pytest.approx(1.0)
