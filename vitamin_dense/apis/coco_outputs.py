"""Results in the COCO formats other tools read (pycocotools, panopticapi, mmdet).

* detections (:class:`DetectionResult`): the COCO *results file*, one dict per
  box ``{image_id, category_id, bbox: [x, y, w, h], score}``
  (``COCO.loadRes`` / ``COCOeval(..., 'bbox')``);
* instances (:class:`MaskSegmentationResult`, task ``instance``): the same
  plus ``segmentation``, an RLE from ``pycocotools.mask.encode`` with its
  ``counts`` as text (``COCOeval(..., 'segm')``);
* panoptic and semantic segmentations: COCO panoptic, a PNG per image whose
  RGB encodes the segment id (``panopticapi.utils.id2rgb``; 0 = void) and a
  JSON with ``images``, ``annotations`` (``segments_info``: ``id``,
  ``category_id``, ``iscrowd``, ``area``, ``bbox``) and ``categories``
  (``panopticapi.evaluation.pq_compute``). A semantic label map becomes one
  segment per class present; pixels of no class are void.

Category ids follow the vocabulary order from 1 (COCO numbers from 1), or
``category_ids``: one id per class, or a ``{class name: id}`` map (e.g. the
categories of the annotation file to evaluate against). :class:`CocoWriter`
collects the results of many images and writes the files of a run.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ConfigError
from .detection_results import DetectionResult

CategoryIds = Union[None, Sequence[int], Mapping[str, int]]
PREFIX = 'coco'


def category_id_list(class_names: Sequence[str], category_ids: CategoryIds = None) -> List[int]:
    """One COCO category id per class: ``1..K`` by default, else the given list or map."""
    if category_ids is None:
        return list(range(1, len(class_names) + 1))
    if isinstance(category_ids, Mapping):
        missing = [n for n in class_names if n not in category_ids]
        if missing:
            raise ConfigError(f"no category id for class '{missing[0]}' "
                              f'({len(missing)} of {len(class_names)} classes lack one)')
        ids = [int(category_ids[n]) for n in class_names]
    else:
        ids = [int(i) for i in category_ids]
        if len(ids) != len(class_names):
            raise ConfigError(f'{len(ids)} category ids for {len(class_names)} classes')
    if len(set(ids)) != len(ids):
        raise ConfigError(f'category ids must be distinct, got {ids}')
    return ids


def coco_categories(class_names: Sequence[str], category_ids: CategoryIds = None,
                    is_thing: Optional[Sequence[bool]] = None) -> List[Dict[str, Any]]:
    """COCO ``categories`` entries (``id``, ``name``, ``supercategory``, ``isthing``)."""
    ids = category_id_list(class_names, category_ids)
    things = list(is_thing) if is_thing is not None else [True] * len(class_names)
    return [dict(id=i, name=n, supercategory='', isthing=int(bool(t)))
            for i, n, t in zip(ids, class_names, things)]


def _xyxy_to_xywh(box) -> List[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]


def detections_to_coco(result, image_id: int, category_ids: CategoryIds = None
                       ) -> List[Dict[str, Any]]:
    """A :class:`DetectionResult` as COCO results-file entries (boxes ``x, y, w, h``)."""
    ids = category_id_list(result.class_names, category_ids)
    return [dict(image_id=int(image_id), category_id=ids[int(label)], bbox=_xyxy_to_xywh(box),
                 score=round(float(score), 5))
            for box, score, label in zip(result.boxes, result.scores, result.labels)]


def encode_mask(mask: np.ndarray) -> Dict[str, Any]:
    """A boolean ``(H, W)`` mask as a COCO RLE with text ``counts`` (JSON-ready)."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def instances_to_coco(result, image_id: int, category_ids: CategoryIds = None
                      ) -> List[Dict[str, Any]]:
    """Instances of a segmentation result as COCO results-file entries with RLE masks."""
    inst = getattr(result, 'instances', None)
    if inst is None:
        raise ConfigError('this result holds no instances (segment with task="instance")')
    ids = category_id_list(result.class_names, category_ids)
    out = []
    for mask, label, score, box in zip(inst['masks'], inst['labels'], inst['scores'],
                                       inst['boxes']):
        out.append(dict(image_id=int(image_id), category_id=ids[int(label)],
                        segmentation=encode_mask(mask), bbox=_xyxy_to_xywh(box),
                        score=round(float(score), 5)))
    return out


def _segment_bbox(mask: np.ndarray) -> List[int]:
    """panopticapi's box of a segment: ``[x, y, w, h]`` of its pixels, inclusive."""
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if not len(rows):
        return [0, 0, 0, 0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1),
            int(rows[-1] - rows[0] + 1)]


def thing_flags(result) -> List[bool]:
    """Whether each class is a thing: the predictor's flags (``meta['is_thing']``), else
    a panoptic result's segments (classes without a segment: things), else True for
    detections and instances and False for semantic maps (whole-class regions)."""
    flags = result.meta.get('is_thing')
    if flags is not None and len(flags) == len(result.class_names):
        return [bool(f) for f in flags]
    task = getattr(result, 'task', 'detection' if isinstance(result, DetectionResult)
                   else 'semantic')
    if task == 'panoptic':
        out = [True] * len(result.class_names)
        for seg in result.segments:
            out[int(seg['label'])] = bool(seg['isthing'])
        return out
    return [task != 'semantic'] * len(result.class_names)


def segment_map(result) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """``(H, W)`` segment index map (``-1`` void) and one dict per segment
    (``label``, ``isthing``, optional ``score``), of a panoptic result or, for a
    semantic one, one segment per class present."""
    if getattr(result, 'task', 'semantic') == 'panoptic':
        index = result.panoptic if result.panoptic is not None else np.full(result.size, -1)
        return np.asarray(index), [dict(label=int(s['label']), isthing=bool(s['isthing']),
                                        score=float(s['score'])) for s in result.segments]
    labels = np.asarray(result.labels)
    is_thing = thing_flags(result)
    present = [k for k in range(result.num_classes) if result.pixel_counts[k + 1] > 0]
    lut = np.full(result.num_classes + 1, -1, dtype=np.int32)
    for i, k in enumerate(present):
        lut[k + 1] = i
    segments = [dict(label=k, isthing=is_thing[k])
                for k in present]
    return lut[labels.astype(np.int64) + 1], segments


def panoptic_to_coco(result, image_id: int, file_name: str, category_ids: CategoryIds = None
                     ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """A segmentation result as COCO panoptic: ``(RGB uint8 PNG array, annotation)``.

    Segment ids are 1, 2, ... (0 is void), encoded by ``panopticapi.utils.id2rgb``;
    ``file_name`` is the PNG's name that the annotation records.
    """
    from panopticapi.utils import id2rgb
    index, segments = segment_map(result)
    ids = category_id_list(result.class_names, category_ids)
    pan = (index.astype(np.int64) + 1).astype(np.uint32)  # -1 (void) -> 0
    info = []
    for i, seg in enumerate(segments):
        mask = index == i
        area = int(mask.sum())
        if not area:
            continue
        entry = dict(id=i + 1, category_id=ids[seg['label']], iscrowd=0, area=area,
                     bbox=_segment_bbox(mask), isthing=int(seg['isthing']))
        if 'score' in seg:
            entry['score'] = round(seg['score'], 5)
        info.append(entry)
    annotation = dict(image_id=int(image_id), file_name=file_name, segments_info=info)
    return id2rgb(pan).astype(np.uint8), annotation


def image_ids_for(sources: Sequence[str]) -> List[int]:
    """COCO image ids of inputs: their file stems when all are distinct numbers
    (``000000397133.jpg`` -> 397133, as COCO names its images), else 1, 2, ..."""
    stems = [osp.splitext(osp.basename(str(s)))[0] for s in sources]
    if stems and all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(sources) + 1))


class CocoWriter:
    """Collects results of many images and writes the COCO files of a run.

    ``add`` each result (with its image id and file name), then ``write()``:
    ``<out_dir>/<prefix>.bbox.json`` (detections, and the boxes of instances),
    ``<prefix>.segm.json`` (instances, RLE), ``<prefix>.panoptic.json`` with
    the PNGs in ``<panoptic_dir>`` (panoptic and semantic results), and
    ``<prefix>.info.json`` (``images`` and ``categories``, to pair the results
    files with a ground truth). The names follow mmdet's ``outfile_prefix``.
    """

    def __init__(self, out_dir: str, prefix: str = PREFIX, category_ids: CategoryIds = None,
                 panoptic_dir: Optional[str] = None):
        self.out_dir = out_dir
        self.prefix = prefix
        self.category_ids = category_ids
        self.panoptic_dir = panoptic_dir or osp.join(out_dir, f'{prefix}.panoptic')
        self.images: List[Dict[str, Any]] = []
        self.bbox: List[Dict[str, Any]] = []
        self.segm: List[Dict[str, Any]] = []
        self.panoptic: List[Dict[str, Any]] = []
        self.categories: Optional[List[Dict[str, Any]]] = None
        self.kinds = set()

    def add(self, result, image_id: Optional[int] = None, file_name: Optional[str] = None
            ) -> Dict[str, Any]:
        """Add one image's result; returns what it contributes (entries, PNG path)."""
        if image_id is None:  # a numeric file name (COCO's), else the next number
            stem = osp.splitext(osp.basename(result.source or ''))[0]
            image_id = int(stem) if stem.isdigit() else len(self.images) + 1
        image_id = int(image_id)
        file_name = file_name or osp.basename(result.source or '') or f'{image_id:012d}.png'
        h, w = (result.image.shape[:2] if result.image is not None else
                getattr(result, 'size', (0, 0)))
        self.images.append(dict(id=image_id, file_name=file_name, height=int(h), width=int(w)))
        self._check_categories(result)
        added: Dict[str, Any] = {}
        if isinstance(result, DetectionResult):
            added['bbox'] = detections_to_coco(result, image_id, self.category_ids)
            self.bbox += added['bbox']
            self.kinds.add('bbox')
            return added
        if getattr(result, 'task', 'semantic') == 'instance':
            added['segm'] = instances_to_coco(result, image_id, self.category_ids)
            self.segm += added['segm']
            self.bbox += [{k: v for k, v in e.items() if k != 'segmentation'}
                          for e in added['segm']]
            self.kinds.update(('bbox', 'segm'))
            return added
        png_name = osp.splitext(file_name)[0] + '.png'
        png, annotation = panoptic_to_coco(result, image_id, png_name, self.category_ids)
        from ..utils.image_io import save_image
        added['png'] = save_image(osp.join(self.panoptic_dir, png_name), png)
        added['annotation'] = annotation
        self.panoptic.append(annotation)
        self.kinds.add('panoptic')
        return added

    def _check_categories(self, result) -> None:
        categories = coco_categories(result.class_names, self.category_ids,
                                     thing_flags(result))
        if self.categories is None:
            self.categories = categories
        elif [c['name'] for c in categories] != [c['name'] for c in self.categories]:
            raise ConfigError('all results of one COCO file must share one vocabulary')

    def write(self) -> Dict[str, str]:
        """Write the files of the kinds added; returns ``{kind: path}``."""
        os.makedirs(self.out_dir, exist_ok=True)
        paths = {}
        for kind in ('bbox', 'segm'):
            if kind in self.kinds:
                paths[kind] = self._dump(f'{self.prefix}.{kind}.json', getattr(self, kind))
        if 'panoptic' in self.kinds:
            paths['panoptic'] = self._dump(f'{self.prefix}.panoptic.json', dict(
                images=self.images, annotations=self.panoptic, categories=self.categories))
            paths['panoptic_dir'] = self.panoptic_dir
        if self.images:
            paths['info'] = self._dump(f'{self.prefix}.info.json', dict(
                images=self.images, categories=self.categories or []))
        return paths

    def _dump(self, name: str, data) -> str:
        path = osp.join(self.out_dir, name)
        tmp = path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(data, f)
        os.replace(tmp, path)
        return path


__all__ = ['CocoWriter', 'category_id_list', 'coco_categories', 'detections_to_coco',
           'instances_to_coco', 'panoptic_to_coco', 'segment_map', 'thing_flags', 'encode_mask',
           'image_ids_for']
