"""OV-COCO / OV-LVIS metrics against pycocotools' COCOeval and lvis' LVISEval run directly."""
import copy
import os.path as osp

import lvis.eval as lvis_eval_module
import numpy as np
import pytest
import torch
from lvis import LVIS, LVISEval, LVISResults
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import vitamin_dense  # noqa: F401
from vitamin_dense.datasets import DatasetFileError, OVCocoDataset, OVLVISDataset
from vitamin_dense.datasets.ov_splits import OV_COCO_BASE_CLASSES, OV_COCO_NOVEL_CLASSES
from vitamin_dense.errors import ConfigError
from vitamin_dense.evaluation import OVCocoMetric, OVLVISMetric, lvis_numpy_compat
from vitamin_dense.evaluation.lvis_compat import needs_numpy_float_shim
from vitamin_dense.registry import METRICS

from ov_detection_fakes import (noisy_detections, perfect_detections, to_json_results,
                                write_fake_coco, write_fake_lvis)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    path, data = write_fake_coco(root, 'val2017', num_images=10, seed=11)
    ds = OVCocoDataset(data_root=root, ann_file='annotations/instances_val2017.json',
                       data_prefix=dict(img='val2017/'), test_mode=True, serialize_data=False)
    return dict(root=root, path=path, data=data, meta=ds.metainfo,
                img_ids=[ds.get_data_info(i)['img_id'] for i in range(len(ds))],
                infos=[ds.get_data_info(i) for i in range(len(ds))])


@pytest.fixture(scope='module')
def lvis_data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('lvis'))
    path, data = write_fake_lvis(root, 'val2017', num_images=12, seed=12)
    ds = OVLVISDataset(data_root=root, ann_file='annotations/lvis_v1_val.json',
                       data_prefix=dict(img=''), test_mode=True, serialize_data=False)
    return dict(root=root, path=path, data=data, meta=ds.metainfo,
                img_ids=[ds.get_data_info(i)['img_id'] for i in range(len(ds))])


def _cat_ids_by_label(data, classes):
    by_name = {c['name']: c['id'] for c in data['categories']}
    return [by_name[c] for c in classes]


def _restrict(dets, cat_ids, img_ids):
    """Keep the evaluated images and the detections of evaluated categories."""
    keep = np.asarray(sorted(cat_ids))
    out = {}
    for img_id in img_ids:
        det = dets[img_id]
        sel = np.isin(det['cat_ids'], keep)
        out[img_id] = {k: (v[sel] if v is not None else None) for k, v in det.items()}
    return out


def _samples(dets, data, label_of_cat, with_gt_instances=None):
    """Data samples as a detector returns them (original-image xyxy boxes, tensors)."""
    size = {i['id']: (i['height'], i['width']) for i in data['images']}
    samples = []
    for img_id, det in dets.items():
        sample = DetDataSample(metainfo=dict(img_id=img_id, ori_shape=size[img_id]))
        pred = InstanceData()
        pred.bboxes = torch.from_numpy(det['bboxes']).reshape(-1, 4)
        pred.scores = torch.from_numpy(det['scores'])
        pred.labels = torch.tensor([label_of_cat[int(c)] for c in det['cat_ids']],
                                   dtype=torch.long)
        if det['masks'] is not None:
            pred.masks = torch.from_numpy(det['masks'])
        sample.pred_instances = pred
        if with_gt_instances is not None:
            sample.set_field(with_gt_instances[img_id], 'instances', field_type='metainfo')
        samples.append(sample)
    return samples


def _evaluate(metric_cfg, meta, samples, batch=3):
    init_default_scope('vitamin_dense')  # what the runner does with default_scope
    evaluator = Evaluator(metric_cfg)
    evaluator.dataset_meta = meta
    for start in range(0, len(samples), batch):
        evaluator.process(data_samples=samples[start:start + batch])
    return evaluator.evaluate(len(samples))


def _coco_reference(path, results, cat_ids, img_ids, iou_type):
    gt = COCO(path)
    dt = gt.loadRes(copy.deepcopy(results))
    ev = COCOeval(gt, dt, iou_type)
    ev.params.catIds = list(cat_ids)
    ev.params.imgIds = list(img_ids)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


def _lvis_reference(path, results, cat_ids, img_ids, iou_type):
    gt = LVIS(path)
    dt = LVISResults(gt, copy.deepcopy(results))
    ev = LVISEval(gt, dt, iou_type)
    ev.params.cat_ids = sorted(cat_ids)
    ev.params.img_ids = list(img_ids)
    ev.run()
    return ev.get_results()


# ---------------------------------------------------------------------------- OV-COCO
@pytest.mark.parametrize('iou_type', ['bbox', 'segm'])
def test_ov_coco_metric_equals_cocoeval_on_each_split(coco, iou_type):
    meta, data = coco['meta'], coco['data']
    cat_ids = _cat_ids_by_label(data, meta['classes'])
    dets = _restrict(noisy_detections(data, seed=5, with_masks=iou_type == 'segm',
                                      label_ids=cat_ids), cat_ids, coco['img_ids'])
    label_of_cat = {c: i for i, c in enumerate(cat_ids)}
    metric = dict(type='OVCocoMetric', ann_file=coco['path'],
                  metric=None if iou_type == 'segm' else 'bbox')
    out = _evaluate(metric, meta, _samples(dets, data, label_of_cat))
    results = to_json_results(dets, iou_type)

    name_to_id = dict(zip(meta['classes'], cat_ids))
    splits = dict(novel=[name_to_id[n] for n in OV_COCO_NOVEL_CLASSES],
                  base=[name_to_id[n] for n in OV_COCO_BASE_CLASSES], all=cat_ids)
    for split, ids in splits.items():
        ref = _coco_reference(coco['path'], results, ids, coco['img_ids'], iou_type)
        assert 0.0 < ref[1] < 1.0  # a non-trivial number
        assert out[f'ov_coco/{iou_type}_AP50_{split}'] == pytest.approx(ref[1], abs=1e-12)
        assert out[f'ov_coco/{iou_type}_mAP_{split}'] == pytest.approx(ref[0], abs=1e-12)
        if split == 'all':
            for i, key in enumerate(['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']):
                assert out[f'ov_coco/{iou_type}_{key}'] == pytest.approx(ref[i], abs=1e-12)
            assert out[f'ov_coco/{iou_type}_AR@100'] == pytest.approx(ref[8], abs=1e-12)
    if iou_type == 'bbox':  # and mmdet's own OV-COCO metric agrees on the split numbers
        theirs = _evaluate(dict(type='mmdet.OVCocoMetric', ann_file=coco['path']), meta,
                           _samples(dets, data, label_of_cat))
        for split in ('novel', 'base'):
            assert out[f'ov_coco/bbox_AP50_{split}'] == \
                pytest.approx(theirs[f'coco/{split}_ap50'], abs=1e-12)
            assert out[f'ov_coco/bbox_mAP_{split}'] == \
                pytest.approx(theirs[f'coco/{split}_ap'], abs=1e-12)
    # metric=None evaluates bbox and, because the predictions have masks, segm
    assert 'ov_coco/bbox_AP50_novel' in out
    assert ('ov_coco/segm_AP50_novel' in out) == (iou_type == 'segm')


def test_ov_coco_metric_perfect_predictions(coco):
    meta, data = coco['meta'], coco['data']
    cat_ids = _cat_ids_by_label(data, meta['classes'])
    dets = _restrict(perfect_detections(data, with_masks=True), cat_ids, coco['img_ids'])
    out = _evaluate(dict(type='OVCocoMetric', ann_file=coco['path'], classwise=True), meta,
                    _samples(dets, data, {c: i for i, c in enumerate(cat_ids)}))
    for m in ('bbox', 'segm'):
        for split in ('novel', 'base', 'all'):
            assert out[f'ov_coco/{m}_AP50_{split}'] == pytest.approx(1.0)
            assert out[f'ov_coco/{m}_mAP_{split}'] == pytest.approx(1.0)
    present = {a['category_id'] for a in data['annotations']}
    for name, cid in zip(meta['classes'], cat_ids):  # classwise keys: -1 without ground truth
        assert out[f'ov_coco/bbox_{name}_AP50'] == pytest.approx(1.0 if cid in present else -1.0)


def test_ov_coco_metric_without_ann_file_converts_sample_ground_truth(coco):
    meta, data = coco['meta'], coco['data']
    cat_ids = _cat_ids_by_label(data, meta['classes'])
    gt_instances = {info['img_id']: info['instances'] for info in coco['infos']}
    label_of_cat = {c: i for i, c in enumerate(cat_ids)}
    dets = {}
    for img_id, instances in gt_instances.items():
        inst = [x for x in instances if not x['ignore_flag']]
        dets[img_id] = dict(bboxes=np.asarray([x['bbox'] for x in inst],
                                              dtype=np.float32).reshape(-1, 4),
                            scores=np.ones(len(inst), dtype=np.float32),
                            cat_ids=np.asarray([cat_ids[x['bbox_label']] for x in inst]),
                            masks=None)
    out = _evaluate(dict(type='OVCocoMetric'), meta,
                    _samples(dets, data, label_of_cat, with_gt_instances=gt_instances))
    assert out['ov_coco/bbox_AP50_all'] == pytest.approx(1.0)
    assert out['ov_coco/bbox_AP50_novel'] == pytest.approx(1.0)


def test_ov_coco_metric_split_from_dataset_meta_and_arguments(coco):
    meta, data = dict(coco['meta']), coco['data']
    cat_ids = _cat_ids_by_label(data, meta['classes'])
    dets = _restrict(noisy_detections(data, seed=7, label_ids=cat_ids), cat_ids,
                     coco['img_ids'])
    samples = _samples(dets, data, {c: i for i, c in enumerate(cat_ids)})
    results = to_json_results(dets)
    # a split named in the metric config overrides the data set's
    novel = ['cat', 'dog']
    out = _evaluate(dict(type='OVCocoMetric', ann_file=coco['path'], novel_classes=novel),
                    meta, samples)
    name_to_id = dict(zip(meta['classes'], cat_ids))
    ref = _coco_reference(coco['path'], results, [name_to_id[n] for n in novel],
                          coco['img_ids'], 'bbox')
    assert out['ov_coco/bbox_AP50_novel'] == pytest.approx(ref[1], abs=1e-12)
    base_ids = [c for n, c in name_to_id.items() if n not in novel]
    ref = _coco_reference(coco['path'], results, base_ids, coco['img_ids'], 'bbox')
    assert out['ov_coco/bbox_AP50_base'] == pytest.approx(ref[1], abs=1e-12)


def test_ov_coco_metric_no_predictions_and_errors(coco, tmp_path):
    meta, data = coco['meta'], coco['data']
    empty = {i: dict(bboxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32),
                     cat_ids=np.zeros(0, np.int64), masks=None) for i in coco['img_ids']}
    out = _evaluate(dict(type='OVCocoMetric', ann_file=coco['path']), meta,
                    _samples(empty, data, {}))
    assert out['ov_coco/bbox_AP50_novel'] == 0.0 and out['ov_coco/bbox_AP50_all'] == 0.0

    with pytest.raises(DatasetFileError, match='instances_val2017.json'):
        OVCocoMetric(ann_file=str(tmp_path / 'annotations' / 'instances_val2017.json'))
    with pytest.raises(ConfigError, match='metric'):
        OVCocoMetric(metric='proposal')
    with pytest.raises(ConfigError, match='0.5'):
        OVCocoMetric(iou_thrs=[0.75])
    with pytest.raises(ConfigError, match='no masks'):
        _evaluate(dict(type='OVCocoMetric', ann_file=coco['path'], metric='segm'), meta,
                  _samples(empty, data, {}))
    stranger = {123456: empty[coco['img_ids'][0]]}
    data2 = dict(images=[dict(id=123456, width=10, height=10)])
    with pytest.raises(ConfigError, match='not in'):
        _evaluate(dict(type='OVCocoMetric', ann_file=coco['path']), meta,
                  _samples(stranger, data2, {}))
    bad = {coco['img_ids'][0]: dict(bboxes=np.ones((1, 4), np.float32),
                                    scores=np.ones(1, np.float32),
                                    cat_ids=np.asarray([999]), masks=None)}
    with pytest.raises(ConfigError, match='label 65'):
        _evaluate(dict(type='OVCocoMetric', ann_file=coco['path']), meta,
                  _samples(bad, data, {999: 65}))


def test_ov_coco_config_evaluator_end_to_end(coco):
    init_default_scope('vitamin_dense')
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets/ov_coco_detection.py'))
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.data_root = coco['root']
    ds_cfg.serialize_data = False
    from vitamin_dense.registry import DATASETS
    dataset = DATASETS.build(ds_cfg)
    metric_cfg = cfg.test_evaluator
    metric_cfg.ann_file = coco['path']
    assert METRICS.get(metric_cfg.type) is OVCocoMetric
    # predictions in original-image coordinates: the usable ground truth of each test sample
    samples, results = [], []
    cat_ids = _cat_ids_by_label(coco['data'], dataset.metainfo['classes'])
    for i in range(len(dataset)):
        item = dataset[i]['data_samples']
        info = dataset.get_data_info(i)
        inst = [x for x in info['instances'] if not x['ignore_flag']]
        boxes = torch.tensor([x['bbox'] for x in inst], dtype=torch.float32).reshape(-1, 4)
        scores = torch.linspace(1.0, 0.5, len(inst))
        item.pred_instances = InstanceData(bboxes=boxes, scores=scores,
                                           labels=torch.tensor([x['bbox_label'] for x in inst]))
        samples.append(item)
        for box, score, x in zip(boxes.tolist(), scores.tolist(), inst):
            results.append(dict(image_id=info['img_id'], category_id=cat_ids[x['bbox_label']],
                                score=score, bbox=[box[0], box[1], box[2] - box[0],
                                                   box[3] - box[1]]))
    out = _evaluate(metric_cfg, dataset.metainfo, samples)
    assert out['ov_coco/bbox_AP50_novel'] == pytest.approx(1.0)
    # base AP50 < 1: the degenerate (< 1 px wide) boxes mmdet drops from the data set are
    # still ground truth in the json; the metric must agree with COCOeval about that
    base_ids = [cat_ids[i] for i in dataset.metainfo['base_labels']]
    ref = _coco_reference(coco['path'], results, base_ids, coco['img_ids'], 'bbox')
    assert ref[1] < 1.0
    assert out['ov_coco/bbox_AP50_base'] == pytest.approx(ref[1], abs=1e-12)


# ---------------------------------------------------------------------------- OV-LVIS
@pytest.mark.parametrize('iou_type', ['bbox', 'segm'])
def test_ov_lvis_metric_equals_lvis_eval(lvis_data, monkeypatch, iou_type):
    meta, data = lvis_data['meta'], lvis_data['data']
    cat_ids = _cat_ids_by_label(data, meta['classes'])
    dets = noisy_detections(data, seed=9, with_masks=iou_type == 'segm')
    # one image with more than LVIS' 300 detections: both sides must keep the same top 300
    crowded = dets[lvis_data['img_ids'][0]]
    rng = np.random.default_rng(0)
    n = 320
    x1 = rng.uniform(0, 40, n)
    y1 = rng.uniform(0, 30, n)
    extra = np.stack([x1, y1, x1 + rng.uniform(5, 30, n), y1 + rng.uniform(5, 30, n)], 1)
    crowded['bboxes'] = np.concatenate([crowded['bboxes'], extra]).astype(np.float32)
    crowded['scores'] = np.concatenate([crowded['scores'],
                                        rng.uniform(0, 0.5, n)]).astype(np.float32)
    crowded['cat_ids'] = np.concatenate([crowded['cat_ids'], rng.choice(cat_ids, n)])
    if crowded['masks'] is not None:
        h, w = crowded['masks'].shape[1:]
        extra_masks = np.zeros((n, h, w), bool)
        for k, (a, b, c, d) in enumerate(extra):
            extra_masks[k, int(b):int(d), int(a):int(c)] = True
        crowded['masks'] = np.concatenate([crowded['masks'], extra_masks])

    out = _evaluate(dict(type='OVLVISMetric', ann_file=lvis_data['path'],
                         metric=[iou_type] if iou_type == 'bbox' else None),
                    meta, _samples(dets, data, {c: i for i, c in enumerate(cat_ids)}))
    results = to_json_results(dets, iou_type)
    # the reference runs lvis as is; it needs numpy's old float alias, given here for this test
    # only (the metric above ran with its own scoped shim, see lvis_compat)
    monkeypatch.setattr(np, 'float', float, raising=False)
    ref = _lvis_reference(lvis_data['path'], results, cat_ids, lvis_data['img_ids'], iou_type)
    for key in ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf', 'AR@300'):
        assert out[f'ov_lvis/{iou_type}_{key}'] == pytest.approx(float(ref[key]), abs=1e-12)
    assert 0.0 < ref['APr'] < 1.0 and 0.0 < ref['AP'] < 1.0
    rare = [c['id'] for c in data['categories'] if c['frequency'] == 'r']
    base = [c['id'] for c in data['categories'] if c['frequency'] != 'r']
    ref_novel = _lvis_reference(lvis_data['path'], results, rare, lvis_data['img_ids'],
                                iou_type)
    ref_base = _lvis_reference(lvis_data['path'], results, base, lvis_data['img_ids'],
                               iou_type)
    assert out[f'ov_lvis/{iou_type}_AP_novel'] == pytest.approx(float(ref_novel['AP']),
                                                                abs=1e-12)
    assert out[f'ov_lvis/{iou_type}_AP_novel'] == pytest.approx(float(ref['APr']), abs=1e-12)
    assert out[f'ov_lvis/{iou_type}_AP_base'] == pytest.approx(float(ref_base['AP']), abs=1e-12)
    if iou_type == 'segm':
        assert 'ov_lvis/bbox_AP' in out  # masks present: box AP evaluated too


def test_ov_lvis_metric_perfect_and_empty(lvis_data):
    meta, data = lvis_data['meta'], lvis_data['data']
    cat_ids = _cat_ids_by_label(data, meta['classes'])
    label_of_cat = {c: i for i, c in enumerate(cat_ids)}
    dets = perfect_detections(data, with_masks=True)
    out = _evaluate(dict(type='OVLVISMetric', ann_file=lvis_data['path']), meta,
                    _samples(dets, data, label_of_cat))
    for m in ('bbox', 'segm'):
        for key in ('AP', 'APr', 'APc', 'APf', 'AP_novel', 'AP_base'):
            assert out[f'ov_lvis/{m}_{key}'] == pytest.approx(1.0)
    empty = {i: dict(bboxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32),
                     cat_ids=np.zeros(0, np.int64), masks=None) for i in lvis_data['img_ids']}
    out = _evaluate(dict(type='OVLVISMetric', ann_file=lvis_data['path']), meta,
                    _samples(empty, data, label_of_cat))
    assert out['ov_lvis/bbox_APr'] == 0.0 and out['ov_lvis/bbox_AP'] == 0.0


def test_ov_lvis_metric_split_follows_dataset_frequencies(lvis_data):
    meta, data = dict(lvis_data['meta']), lvis_data['data']
    cat_ids = _cat_ids_by_label(data, meta['classes'])
    dets = noisy_detections(data, seed=13)
    samples = _samples(dets, data, {c: i for i, c in enumerate(cat_ids)})
    out_r = _evaluate(dict(type='OVLVISMetric', ann_file=lvis_data['path']), meta, samples)
    assert out_r['ov_lvis/bbox_AP_novel'] == pytest.approx(out_r['ov_lvis/bbox_APr'])
    meta['novel_frequencies'] = ('r', 'c')  # as OVLVISDataset(novel_frequencies=('r', 'c'))
    out_rc = _evaluate(dict(type='OVLVISMetric', ann_file=lvis_data['path']), meta, samples)
    assert out_rc['ov_lvis/bbox_AP_base'] == pytest.approx(out_rc['ov_lvis/bbox_APf'])
    out_f = _evaluate(dict(type='OVLVISMetric', ann_file=lvis_data['path'],
                           novel_frequencies=('r',)), meta, samples)  # the metric's own wins
    assert out_f['ov_lvis/bbox_AP_novel'] == pytest.approx(out_r['ov_lvis/bbox_APr'])


def test_ov_lvis_metric_errors(tmp_path):
    with pytest.raises(ConfigError, match='needs ann_file'):
        OVLVISMetric()
    with pytest.raises(DatasetFileError, match='lvis_v1_val.json'):
        OVLVISMetric(ann_file=str(tmp_path / 'lvis_v1_val.json'))
    path, _ = write_fake_lvis(str(tmp_path), with_images=False)
    with pytest.raises(ConfigError, match='novel_frequencies'):
        OVLVISMetric(ann_file=path, novel_frequencies=('rare',))


# ---------------------------------------------------------------------------- lvis shim
@pytest.mark.skipif(not needs_numpy_float_shim(), reason='numpy still has np.float')
def test_lvis_numpy_shim_is_needed_and_scoped(lvis_data):
    gt = LVIS(lvis_data['path'])
    results = to_json_results(perfect_detections(lvis_data['data']))
    ev = LVISEval(gt, LVISResults(gt, results), 'bbox')
    ev.evaluate()
    with pytest.raises(AttributeError, match='float'):
        ev.accumulate()  # what users of lvis 0.5.3 hit under numpy 2
    original = lvis_eval_module.np
    with lvis_numpy_compat():
        with lvis_numpy_compat():  # nesting is fine
            assert lvis_eval_module.np is not original
        ev.accumulate()
        ev.summarize()
        assert not hasattr(np, 'float')  # the global numpy is untouched
    assert lvis_eval_module.np is original
    assert ev.get_results()['AP'] == pytest.approx(1.0)
