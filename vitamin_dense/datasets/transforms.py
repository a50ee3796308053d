"""Transforms the mmseg / mmdet pipelines lack."""
from __future__ import annotations

import mmcv
import numpy as np
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations

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
