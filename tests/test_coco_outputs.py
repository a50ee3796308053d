"""Results written in the COCO formats read back by the field's own tools.

Detections and instances go through ``pycocotools`` (``COCO.loadRes`` and
``COCOeval`` against a tiny ground truth made of the same objects: AP 1; a
shifted box or mask lowers it), panoptic and semantic results through
``panopticapi`` (the PNG read back with ``rgb2id`` gives the segments; PQ of
the written files against themselves is 100, against a changed copy less).
"""
import contextlib
import io
import json
import os

import cv2
import numpy as np
import pytest
import torch
from panopticapi.evaluation import PQStat, pq_compute_single_core
from panopticapi.utils import rgb2id
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vitamin_dense.apis import CocoWriter, DetectionResult, MaskSegmentationResult
from vitamin_dense.apis.coco_outputs import (category_id_list, detections_to_coco,
                                             image_ids_for, instances_to_coco, panoptic_to_coco)
from vitamin_dense.apis.results import SegmentationResult
from vitamin_dense.errors import ConfigError

H, W = 40, 60
NAMES = ['cat', 'dog', 'grass']
IDS = [17, 18, 124]  # COCO's own ids for cat, dog, grass-merged


def _masks():
    masks = np.zeros((2, H, W), bool)
    masks[0, 5:20, 4:30] = True
    masks[1, 22:38, 35:58] = True
    return masks


def _boxes(masks):
    out = []
    for m in masks:
        ys, xs = np.nonzero(m)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.array(out, np.float32)


def _instance_result(masks, labels=(0, 1), scores=(0.9, 0.8)):
    labels_map = np.full((H, W), 2, np.int16)
    return MaskSegmentationResult(
        labels=labels_map, class_names=list(NAMES), scores=torch.rand(3, 4, 4),
        image=np.zeros((H, W, 3), np.uint8), source='000000000042.jpg', task='instance',
        instances=dict(masks=masks, labels=np.array(labels), scores=np.array(scores),
                       boxes=_boxes(masks)))


def _ground_truth(masks, labels=(0, 1), image_id=42):
    from vitamin_dense.apis.coco_outputs import encode_mask
    anns = []
    for i, (m, lab) in enumerate(zip(masks, labels)):
        ys, xs = np.nonzero(m)
        anns.append(dict(id=i + 1, image_id=image_id, category_id=IDS[lab], iscrowd=0,
                         area=int(m.sum()), segmentation=encode_mask(m),
                         bbox=[float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()),
                               float(ys.max() + 1 - ys.min())]))
    gt = COCO()
    gt.dataset = dict(images=[dict(id=image_id, height=H, width=W, file_name='x.jpg')],
                      annotations=anns,
                      categories=[dict(id=i, name=n) for i, n in zip(IDS, NAMES)])
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def _ap(gt, results_file, iou_type):
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results_file)
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[0]


def test_category_and_image_ids():
    assert category_id_list(NAMES) == [1, 2, 3]
    assert category_id_list(NAMES, dict(zip(NAMES, IDS))) == IDS
    with pytest.raises(ConfigError, match="no category id for class 'grass'"):
        category_id_list(NAMES, {'cat': 1, 'dog': 2})
    with pytest.raises(ConfigError, match='2 category ids for 3 classes'):
        category_id_list(NAMES, [1, 2])
    assert image_ids_for(['a/000000000139.jpg', '000000397133.jpg']) == [139, 397133]
    assert image_ids_for(['cat.jpg', '12.jpg']) == [1, 2]


def test_detections_round_trip_through_pycocotools(tmp_path):
    masks = _masks()
    boxes = _boxes(masks)
    result = DetectionResult(boxes=boxes, scores=[0.9, 0.7], labels=[0, 1],
                             class_names=list(NAMES), image=np.zeros((H, W, 3), np.uint8),
                             source='000000000042.jpg')
    entries = detections_to_coco(result, 42, IDS)
    assert entries[0] == dict(image_id=42, category_id=17, bbox=[4.0, 5.0, 26.0, 15.0],
                              score=0.9)
    writer = CocoWriter(str(tmp_path), category_ids=IDS)
    writer.add(result)  # the image id from COCO's numeric file name
    paths = writer.write()
    assert set(paths) == {'bbox', 'info'}
    gt = _ground_truth(masks)
    assert _ap(gt, paths['bbox'], 'bbox') == pytest.approx(1.0)
    shifted = DetectionResult(boxes=boxes + np.array([12, 0, 12, 0], np.float32),
                              scores=[0.9, 0.7], labels=[0, 1], class_names=list(NAMES))
    with open(tmp_path / 'shifted.json', 'w') as f:
        json.dump(detections_to_coco(shifted, 42, IDS), f)
    assert _ap(gt, str(tmp_path / 'shifted.json'), 'bbox') < 0.5
    with open(paths['info']) as f:
        info = json.load(f)
    assert info['images'] == [dict(id=42, file_name='000000000042.jpg', height=H, width=W)]
    assert [c['id'] for c in info['categories']] == IDS


def test_instances_round_trip_as_rle(tmp_path):
    from pycocotools import mask as mask_utils
    masks = _masks()
    result = _instance_result(masks)
    entries = instances_to_coco(result, 42, IDS)
    for entry, mask in zip(entries, masks):
        assert isinstance(entry['segmentation']['counts'], str)
        rle = dict(entry['segmentation'], counts=entry['segmentation']['counts'].encode())
        assert (mask_utils.decode(rle).astype(bool) == mask).all()
    writer = CocoWriter(str(tmp_path), category_ids=IDS)
    writer.add(result, 42)
    paths = writer.write()
    assert {'bbox', 'segm'} <= set(paths)
    gt = _ground_truth(masks)
    assert _ap(gt, paths['segm'], 'segm') == pytest.approx(1.0)
    assert _ap(gt, paths['bbox'], 'bbox') == pytest.approx(1.0)
    wrong = _instance_result(np.roll(masks, 15, axis=2))
    with open(tmp_path / 'wrong.json', 'w') as f:
        json.dump(instances_to_coco(wrong, 42, IDS), f)
    assert _ap(gt, str(tmp_path / 'wrong.json'), 'segm') < 0.5


def _panoptic_result():
    index = np.full((H, W), -1, np.int32)
    index[:, :] = 2              # grass everywhere
    index[_masks()[0]] = 0       # a cat
    index[_masks()[1]] = 1       # a dog
    index[:3, :3] = -1           # void corner
    segments = [dict(id=0, label=0, name='cat', isthing=True, score=0.9, area=0),
                dict(id=1, label=1, name='dog', isthing=True, score=0.8, area=0),
                dict(id=2, label=2, name='grass', isthing=False, score=0.7, area=0)]
    for s in segments:
        s['area'] = int((index == s['id']).sum())
    labels = np.array([-1, 0, 1, 2], np.int16)[index + 1]
    return MaskSegmentationResult(labels=labels, class_names=list(NAMES),
                                  scores=torch.rand(3, 4, 4), image=np.zeros((H, W, 3), np.uint8),
                                  source='pic.jpg', task='panoptic', panoptic=index,
                                  segments=segments)


def _pq(gt_json, pred_json, gt_dir, pred_dir):
    with open(gt_json) as f:
        gt = json.load(f)
    with open(pred_json) as f:
        pred = json.load(f)
    pairs = list(zip(gt['annotations'], pred['annotations']))
    categories = {c['id']: c for c in gt['categories']}
    with contextlib.redirect_stdout(io.StringIO()):
        stat: PQStat = pq_compute_single_core(0, pairs, gt_dir, pred_dir, categories)
        return stat.pq_average(categories, isthing=None)[0]['pq']


def test_panoptic_png_and_json_round_trip_through_panopticapi(tmp_path):
    result = _panoptic_result()
    png, annotation = panoptic_to_coco(result, 7, 'pic.png', IDS)
    ids = rgb2id(png)
    assert (ids == result.panoptic + 1).all()  # 0 = void
    info = {s['id']: s for s in annotation['segments_info']}
    assert set(info) == {1, 2, 3}
    assert info[1]['category_id'] == 17 and info[3]['category_id'] == 124
    assert info[1]['bbox'] == [4, 5, 26, 15] and info[1]['area'] == 26 * 15
    assert info[3]['iscrowd'] == 0 and info[3]['isthing'] == 0

    writer = CocoWriter(str(tmp_path / 'a'), category_ids=IDS)
    writer.add(result, 7)
    paths = writer.write()
    written = cv2.imread(os.path.join(paths['panoptic_dir'], 'pic.png'))[..., ::-1]
    assert (rgb2id(written) == ids).all()
    with open(paths['panoptic']) as f:
        data = json.load(f)
    assert data['annotations'][0]['file_name'] == 'pic.png'
    assert {c['id']: c['isthing'] for c in data['categories']} == {17: 1, 18: 1, 124: 0}
    assert _pq(paths['panoptic'], paths['panoptic'], paths['panoptic_dir'],
               paths['panoptic_dir']) == pytest.approx(1.0)

    changed = _panoptic_result()
    changed.panoptic[changed.panoptic == 1] = 2  # the dog becomes grass
    changed.segments = changed.segments[:1] + [dict(changed.segments[2], id=1)]
    changed.panoptic[changed.panoptic == 2] = 1
    other = CocoWriter(str(tmp_path / 'b'), category_ids=IDS)
    other.add(changed, 7)
    moved = other.write()
    assert _pq(paths['panoptic'], moved['panoptic'], paths['panoptic_dir'],
               moved['panoptic_dir']) < 0.9


def test_semantic_labels_become_one_segment_per_class(tmp_path):
    labels = np.full((H, W), 2, np.int16)
    labels[10:20, 10:20] = 0
    labels[:2] = -1  # no class (thresholded): void
    result = SegmentationResult(labels=labels, class_names=list(NAMES),
                                scores=torch.rand(3, 4, 4), image=np.zeros((H, W, 3), np.uint8),
                                source='s.png')
    png, annotation = panoptic_to_coco(result, 1, 's.png')
    ids = rgb2id(png)
    segments = {s['id']: s for s in annotation['segments_info']}
    assert sorted(s['category_id'] for s in segments.values()) == [1, 3]  # no dog pixel
    for seg_id, seg in segments.items():
        assert (ids == seg_id).sum() == seg['area'] == (labels == seg['category_id'] - 1).sum()
    assert (ids[:2] == 0).all()
    writer = CocoWriter(str(tmp_path))
    writer.add(result, 1)
    paths = writer.write()
    assert _pq(paths['panoptic'], paths['panoptic'], paths['panoptic_dir'],
               paths['panoptic_dir']) == pytest.approx(1.0)


def test_one_file_one_vocabulary(tmp_path):
    writer = CocoWriter(str(tmp_path))
    writer.add(DetectionResult(boxes=np.zeros((0, 4)), scores=[], labels=[],
                               class_names=['a']), 1)
    with pytest.raises(ConfigError, match='one vocabulary'):
        writer.add(DetectionResult(boxes=np.zeros((0, 4)), scores=[], labels=[],
                                   class_names=['b']), 2)
