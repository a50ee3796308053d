"""Small fake COCO- and LVIS-format files for the open-vocabulary detection tests.

The files mimic the real ones where it matters: COCO's 80 categories with
non-contiguous ids, crowd and degenerate boxes, classes outside OV-COCO;
LVIS' frequency groups, synonyms, ``coco_url`` image paths and the federated
``neg_category_ids`` / ``not_exhaustive_category_ids`` lists. Images are
written as small JPEG files so that mmdet pipelines can run on them.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_utils

from vitamin_dense.datasets.ov_splits import coco_classes


def _write_image(path: str, width: int, height: int, rng: np.random.Generator) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(path, rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def _random_box(rng: np.random.Generator, width: int, height: int) -> List[float]:
    w = float(rng.uniform(6, width * 0.6))
    h = float(rng.uniform(6, height * 0.6))
    x = float(rng.uniform(0, width - w))
    y = float(rng.uniform(0, height - h))
    return [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]


def _polygon(box: List[float]) -> List[List[float]]:
    """A diamond inside the box (a mask that differs from its box)."""
    x, y, w, h = box
    return [[x + w / 2, y, x + w, y + h / 2, x + w / 2, y + h, x, y + h / 2]]


def coco_categories() -> List[dict]:
    """COCO's 80 classes with non-contiguous ids (as the real file: 1..90 with gaps)."""
    return [dict(id=i + 1 + i // 9, name=name, supercategory='thing')
            for i, name in enumerate(coco_classes())]


def write_fake_coco(root: str, split: str = 'val2017', num_images: int = 8, seed: int = 0,
                    with_images: bool = True) -> Tuple[str, dict]:
    """COCO-format instances file under ``root/annotations`` (+ images under ``root/split``).

    Image 0 has only annotations of classes outside OV-COCO (dropped by the
    OV-COCO data set), image 1 only novel-class boxes (dropped in base
    training), the others a mix with one crowd box and one degenerate box.
    """
    rng = np.random.default_rng(seed)
    categories = coco_categories()
    by_name = {c['name']: c['id'] for c in categories}
    outside = [by_name[n] for n in ('traffic light', 'hot dog', 'teddy bear')]
    novel = [by_name[n] for n in ('cat', 'dog', 'bus', 'cup', 'knife', 'couch')]
    base = [by_name[n] for n in ('person', 'car', 'bicycle', 'chair', 'tv', 'bottle')]
    images, annotations = [], []
    for idx in range(num_images):
        width, height = int(rng.integers(80, 160)), int(rng.integers(60, 140))
        img_id = 1000 + 7 * idx
        file_name = f'{img_id:012d}.jpg'
        images.append(dict(id=img_id, file_name=file_name, width=width, height=height))
        if with_images:
            _write_image(osp.join(root, split, file_name), width, height, rng)
        if idx == 0:
            cats = [outside[0], outside[1]]
        elif idx == 1:
            cats = [novel[0], novel[1], novel[2]]
        else:
            cats = list(rng.choice(base, 3)) + list(rng.choice(novel, 2)) + [outside[2]]
        for cat in cats:
            box = _random_box(rng, width, height)
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id,
                                    category_id=int(cat), bbox=box, area=box[2] * box[3],
                                    iscrowd=0, segmentation=_polygon(box)))
        if idx >= 2:
            box = _random_box(rng, width, height)  # a crowd region (ignored by COCOeval)
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id,
                                    category_id=int(base[0]), bbox=box,
                                    area=box[2] * box[3], iscrowd=1,
                                    segmentation=_polygon(box)))
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id,  # degenerate
                                    category_id=int(base[1]), bbox=[3.0, 3.0, 0.5, 8.0],
                                    area=4.0, iscrowd=0,
                                    segmentation=[[3, 3, 3.5, 3, 3.5, 11, 3, 11]]))
    data = dict(images=images, annotations=annotations, categories=categories,
                info=dict(description='fake COCO'), licenses=[])
    path = osp.join(root, 'annotations', f'instances_{split}.json')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f)
    return path, data


def filter_like_ovrcnn(data: dict, keep_names) -> dict:
    """What OVR-CNN's notebook does: keep only some categories and the images that have them."""
    keep_ids = {c['id'] for c in data['categories'] if c['name'] in set(keep_names)}
    anns = [a for a in data['annotations'] if a['category_id'] in keep_ids]
    used = {a['image_id'] for a in anns}
    return dict(images=[i for i in data['images'] if i['id'] in used], annotations=anns,
                categories=[c for c in data['categories'] if c['id'] in keep_ids])


LVIS_FAKE_CATEGORIES: List[Tuple[str, str, List[str]]] = [
    # (name, frequency, synonyms)
    ('aerosol_can', 'c', ['aerosol_can', 'spray_can']),
    ('apple', 'f', ['apple']),
    ('bat_(animal)', 'r', ['bat_(animal)']),
    ('bagpipe', 'r', ['bagpipe']),
    ('banana', 'f', ['banana']),
    ('beanbag', 'r', ['beanbag']),
    ('bowl', 'f', ['bowl']),
    ('cat', 'f', ['cat', 'kitty']),
    ('dog', 'f', ['dog', 'kitty']),  # a synonym shared with another class (LVIS has such)
    ('gargoyle', 'c', ['gargoyle']),
]


def write_fake_lvis(root: str, split: str = 'val2017', num_images: int = 8, seed: int = 0,
                    with_images: bool = True) -> Tuple[str, dict]:
    """LVIS v1-format file under ``root/annotations`` (+ images under ``root/split``)."""
    rng = np.random.default_rng(seed)
    categories = []
    for i, (name, freq, syn) in enumerate(LVIS_FAKE_CATEGORIES):
        categories.append({'id': 3 * i + 2, 'name': name, 'frequency': freq, 'synonyms': syn,
                           'synset': f'{name}.n.01', 'def': 'a thing', 'image_count': 1,
                           'instance_count': 1})
    cat_ids = [c['id'] for c in categories]
    rare = [c['id'] for c in categories if c['frequency'] == 'r']
    images, annotations = [], []
    for idx in range(num_images):
        width, height = int(rng.integers(80, 160)), int(rng.integers(60, 140))
        img_id = 500 + 3 * idx
        file_name = f'{img_id:012d}.jpg'
        if idx == 1:
            present = [rare[0]]  # only a rare class: dropped by base training
        else:
            present = sorted(set(int(c) for c in rng.choice(cat_ids, 3, replace=False)))
        absent = [c for c in cat_ids if c not in present]
        neg = sorted(int(c) for c in rng.choice(absent, 3, replace=False))
        not_exhaustive = [present[0]] if idx % 3 == 2 else []
        images.append(dict(id=img_id, width=width, height=height,
                           coco_url=f'http://images.cocodataset.org/{split}/{file_name}',
                           neg_category_ids=neg, not_exhaustive_category_ids=not_exhaustive))
        if with_images:
            _write_image(osp.join(root, split, file_name), width, height, rng)
        for cat in present:
            for _ in range(int(rng.integers(1, 3))):
                box = _random_box(rng, width, height)
                poly = _polygon(box)
                rle = mask_utils.merge(mask_utils.frPyObjects(poly, height, width))
                annotations.append(dict(id=len(annotations) + 1, image_id=img_id,
                                        category_id=int(cat), bbox=box,
                                        area=float(mask_utils.area(rle)), segmentation=poly))
    data = dict(images=images, annotations=annotations, categories=categories,
                info=dict(description='fake LVIS'), licenses=[])
    path = osp.join(root, 'annotations', f'lvis_v1_{split[:-4]}.json')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f)
    return path, data


def noisy_detections(data: dict, seed: int, with_masks: bool = False,
                     label_ids: List[int] = None) -> Dict[int, dict]:
    """Per image: jittered copies of the ground truth, random boxes and wrong labels.

    Returns ``{img_id: dict(bboxes=(N,4) float32 xyxy, scores=(N,) float32,
    cat_ids=(N,) int, masks=(N,H,W) bool or None)}``.
    """
    rng = np.random.default_rng(seed)
    cat_ids = label_ids or [c['id'] for c in data['categories']]
    by_image: Dict[int, list] = {i['id']: [] for i in data['images']}
    for ann in data['annotations']:
        by_image[ann['image_id']].append(ann)
    out = {}
    for img in data['images']:
        w, h = img['width'], img['height']
        boxes, scores, cats = [], [], []
        for ann in by_image[img['id']]:
            x, y, bw, bh = ann['bbox']
            for _ in range(2):
                jitter = rng.normal(0, 0.15, 4) * [bw, bh, bw, bh]
                x1, y1 = x + jitter[0], y + jitter[1]
                x2, y2 = x + bw + jitter[2], y + bh + jitter[3]
                boxes.append([x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)])
                scores.append(rng.uniform(0.05, 1.0))
                cats.append(ann['category_id'] if rng.uniform() < 0.8 else
                            int(rng.choice(cat_ids)))
        for _ in range(4):
            x, y, bw, bh = _random_box(rng, w, h)
            boxes.append([x, y, x + bw, y + bh])
            scores.append(rng.uniform(0.0, 0.6))
            cats.append(int(rng.choice(cat_ids)))
        boxes = np.clip(np.asarray(boxes, dtype=np.float32), 0, [w, h, w, h]).astype(np.float32)
        masks = None
        if with_masks:
            masks = np.zeros((len(boxes), h, w), dtype=bool)
            for k, (x1, y1, x2, y2) in enumerate(boxes):
                masks[k, int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = True
                masks[k, int(y1):int(y1) + max(1, int((y2 - y1) / 4)), int(x1):int(x2)] = False
        out[img['id']] = dict(bboxes=boxes, scores=np.asarray(scores, dtype=np.float32),
                              cat_ids=np.asarray(cats, dtype=np.int64), masks=masks)
    return out


def perfect_detections(data: dict, with_masks: bool = False) -> Dict[int, dict]:
    """Every non-crowd ground-truth box (and mask) with its class and score 1."""
    out = {}
    for img in data['images']:
        anns = [a for a in data['annotations']
                if a['image_id'] == img['id'] and not a.get('iscrowd', 0)]
        boxes = np.asarray([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                             a['bbox'][1] + a['bbox'][3]] for a in anns],
                           dtype=np.float32).reshape(-1, 4)
        masks = None
        if with_masks:
            h, w = img['height'], img['width']
            masks = np.zeros((len(anns), h, w), dtype=bool)
            for k, a in enumerate(anns):
                rle = mask_utils.merge(mask_utils.frPyObjects(a['segmentation'], h, w))
                masks[k] = mask_utils.decode(rle).astype(bool)
        out[img['id']] = dict(bboxes=boxes, scores=np.ones(len(anns), dtype=np.float32),
                              cat_ids=np.asarray([a['category_id'] for a in anns],
                                                 dtype=np.int64), masks=masks)
    return out


def to_json_results(dets: Dict[int, dict], iou_type: str = 'bbox') -> List[dict]:
    """The detections as a COCO / LVIS result list (for reference evaluations)."""
    results = []
    for img_id, det in dets.items():
        for k in range(len(det['scores'])):
            x1, y1, x2, y2 = det['bboxes'][k].tolist()
            item = dict(image_id=img_id, category_id=int(det['cat_ids'][k]),
                        score=float(det['scores'][k]))
            if iou_type == 'bbox':
                item['bbox'] = [x1, y1, x2 - x1, y2 - y1]
            else:
                rle = mask_utils.encode(np.asfortranarray(det['masks'][k].astype(np.uint8)))
                rle['counts'] = rle['counts'].decode()
                item['segmentation'] = rle
            results.append(item)
    return results
