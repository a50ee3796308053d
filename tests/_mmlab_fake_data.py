"""Tiny on-disk data sets in COCO-instances and ADE20K layouts for Runner tests.

Filled rectangles and ellipses of a few colours on noisy backgrounds; the
annotation files are what mmdet's CocoDataset and mmseg's ADE20KDataset read.
Only for exercising the training / evaluation plumbing (two iterations, an
evaluation pass), not for learning.
"""
from __future__ import annotations

import json
import os
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np

CLASSES: Tuple[str, ...] = ('red square', 'green circle', 'blue square')
_COLOURS = {0: (0, 0, 220), 1: (0, 200, 0), 2: (220, 0, 0)}  # BGR


def _draw(rng: np.random.Generator, size: Tuple[int, int], num_objects: int):
    h, w = size
    img = rng.integers(90, 160, size=(h, w, 3), dtype=np.uint8)
    objects = []
    for _ in range(num_objects):
        label = int(rng.integers(0, len(CLASSES)))
        bw, bh = int(rng.integers(w // 6, w // 3)), int(rng.integers(h // 6, h // 3))
        x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        mask = np.zeros((h, w), np.uint8)
        if label == 1:
            cv2.ellipse(mask, (x0 + bw // 2, y0 + bh // 2), (bw // 2, bh // 2), 0, 0, 360, 1, -1)
        else:
            mask[y0:y0 + bh, x0:x0 + bw] = 1
        img[mask > 0] = _COLOURS[label]
        for prev in objects:  # later shapes occlude earlier ones
            prev['mask'][mask > 0] = 0
        objects.append(dict(label=label, mask=mask))
    return img, [o for o in objects if o['mask'].sum() > 16]


def write_coco_instances(root: str, num_images: int = 4, size: Tuple[int, int] = (96, 128),
                         seed: int = 0, name: str = 'instances.json') -> Dict[str, str]:
    """Images under ``root/images`` and a COCO instances file; returns their paths."""
    rng = np.random.default_rng(seed)
    img_dir = os.path.join(root, 'images')
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        img, objects = _draw(rng, size, num_objects=3)
        file_name = f'{i:04d}.png'
        cv2.imwrite(os.path.join(img_dir, file_name), img)
        images.append(dict(id=i + 1, file_name=file_name, height=size[0], width=size[1]))
        for obj in objects:
            contours, _ = cv2.findContours(obj['mask'], cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            polys = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
            ys, xs = np.nonzero(obj['mask'])
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            annotations.append(dict(
                id=len(annotations) + 1, image_id=i + 1, category_id=obj['label'] + 1,
                bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                area=float(obj['mask'].sum()), iscrowd=0, segmentation=polys))
    categories = [dict(id=k + 1, name=n) for k, n in enumerate(CLASSES)]
    ann_file = os.path.join(root, name)
    with open(ann_file, 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return dict(root=root, ann_file=ann_file, img_dir=img_dir)


def write_ade20k_like(root: str, num_images: int = 4, size: Tuple[int, int] = (96, 96),
                      seed: int = 0) -> Dict[str, str]:
    """ADE20K layout: ``images/training`` (.jpg) and ``annotations/training`` (.png, 0 = ignore)."""
    rng = np.random.default_rng(seed)
    paths = {}
    for split in ('training', 'validation'):
        img_dir = os.path.join(root, 'images', split)
        ann_dir = os.path.join(root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(num_images):
            img, objects = _draw(rng, size, num_objects=3)
            seg = np.full(size, 150, np.uint8)  # "background" = ADE class 149 after reduce_zero_label
            for obj in objects:
                seg[obj['mask'] > 0] = obj['label'] + 1
            cv2.imwrite(os.path.join(img_dir, f'{i:04d}.jpg'), img)
            cv2.imwrite(os.path.join(ann_dir, f'{i:04d}.png'), seg)
        paths[split] = img_dir
    paths['root'] = root
    return paths


def tiny_backbone_overrides(prefix: str = 'model.backbone') -> Dict[str, object]:
    """``--cfg-options``-style overrides turning a ViTamin config into ViTamin-Tiny, no weights."""
    return {f'{prefix}.model_name': 'ViTamin-Tiny', f'{prefix}.weights': None}


def class_names() -> Sequence[str]:
    return CLASSES
