"""Transforms the mmseg / mmdet pipelines lack."""
from __future__ import annotations

import mmcv
import numpy as np
from mmdet.datasets.transforms import Resize as DetResize
from mmdet.structures.mask import BitmapMasks
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from PIL import Image

from ..registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadWideSemSegAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` for label files wider than 8 bits.

    ADE20K-847 and Pascal Context 459 store labels as uint16 TIFFs (ignore =
    65535): mmseg's loader casts to uint8 and would wrap every label above 255.
    This one keeps the values (as int64); ``reduce_zero_label`` and the data
    set's ``label_map`` work as in mmseg, with ``ignore_index`` as the void value.
    """

    def __init__(self, ignore_index: int = 65535, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ignore_index = ignore_index

    def _load_seg_map(self, results: dict) -> None:
        img_bytes = fileio.get(results['seg_map_path'], backend_args=self.backend_args)
        seg = mmcv.imfrombytes(img_bytes, flag='unchanged',
                               backend=self.imdecode_backend).squeeze().astype(np.int64)
        if self.reduce_zero_label is None:
            self.reduce_zero_label = results['reduce_zero_label']
        if self.reduce_zero_label:
            void = (seg == 0) | (seg == self.ignore_index)
            seg = seg - 1
            seg[void] = self.ignore_index
        if results.get('label_map'):
            original = seg.copy()
            for old, new in results['label_map'].items():
                seg[original == old] = self.ignore_index if new == 255 else new
        results['gt_seg_map'] = seg
        results['seg_fields'].append('gt_seg_map')


@TRANSFORMS.register_module()
class PILResize(DetResize):
    """mmdet's ``Resize`` done entirely with PIL, as detectron2's ``ResizeTransform``.

    The image is resized with PIL bilinear (``backend='pillow'``; antialiased
    when shrinking, unlike OpenCV's), the segmentation map and the instance
    masks with PIL nearest, to exactly the image's new size. mmdet would resize
    ``BitmapMasks`` with OpenCV's nearest neighbour, whose sampling grid is half
    a source pixel off PIL's (thing masks drifting from the image and the stuff
    map), and cannot resize integer label maps with PIL. Mask2Former / FC-CLIP
    resize the panoptic PNG with PIL nearest and cut the masks from it: the
    same pixels as resizing each mask and the label map with PIL nearest.
    """

    def __init__(self, *args, backend: str = 'pillow', interpolation: str = 'bilinear',
                 **kwargs) -> None:
        super().__init__(*args, backend=backend, interpolation=interpolation, **kwargs)

    def _resize_seg(self, results: dict) -> None:
        if results.get('gt_seg_map') is not None:
            h, w = results['img_shape'][:2]
            results['gt_seg_map'] = pil_nearest(results['gt_seg_map'], (w, h))

    def _resize_masks(self, results: dict) -> None:
        masks = results.get('gt_masks')
        if not isinstance(masks, BitmapMasks):
            super()._resize_masks(results)
            return
        h, w = results['img_shape'][:2]
        resized = [pil_nearest(m, (w, h)) for m in masks.masks]
        data = np.stack(resized) if resized else np.zeros((0, h, w), dtype=np.uint8)
        results['gt_masks'] = BitmapMasks(data, h, w)


def pil_nearest(array: np.ndarray, size) -> np.ndarray:
    """``(H, W)`` integer array resized to ``size = (w, h)`` with PIL's nearest neighbour
    (uint8 as 8-bit, other integers as 32-bit PIL images), dtype kept."""
    if array.dtype == np.uint8:
        image = Image.fromarray(array)
    else:
        if array.size and (array.min() < -2 ** 31 or array.max() >= 2 ** 31):
            raise ValueError('label values do not fit 32 bits')
        image = Image.fromarray(array.astype(np.int32), mode='I')
    return np.asarray(image.resize(tuple(size), Image.NEAREST)).astype(array.dtype)
