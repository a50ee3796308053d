"""Semantic segmentation data sets through mmseg's ``BaseSegDataset`` family.

Thin subclasses of mmseg's classes (ADE20K-150, Cityscapes, Pascal Context 59,
Pascal VOC) add a check of the files before loading (one-line
:class:`DatasetError` with the expected layout) and ``synonyms`` in the
metainfo. ADE20K-847 and Pascal Context 459, which mmseg lacks, read uint16
TIFF labels (use ``LoadWideSemSegAnnotations``; void = 65535) and take their
class names from a file of the data set (``classes_file``). Pascal VOC-20 is
VOC without the background class (background -> ignore).
"""
from __future__ import annotations

from typing import Dict, Optional

from mmseg.datasets import (ADE20KDataset, BaseSegDataset, CityscapesDataset,
                            PascalContextDataset59, PascalVOCDataset)

from ..registry import DATASETS
from .checks import join_root, require_paths
from .class_names import (ade150_extra_synonyms, build_synonyms, palette_for, read_class_file,
                          voc20_meta)


class OpenVocabSemSegMixin:
    """File checks and synonyms for mmseg data sets (see the module doc)."""

    DATASET_NAME = 'semantic data set'
    LAYOUT = ''
    DEFAULT_DATA_PREFIX: Dict[str, str] = {}
    DEFAULT_ANN_FILE = ''

    @classmethod
    def extra_synonyms(cls) -> Optional[dict]:
        return None

    def _class_metainfo(self, data_root: Optional[str]) -> dict:
        return {}

    def __init__(self, data_root: Optional[str] = None, data_prefix: Optional[dict] = None,
                 metainfo: Optional[dict] = None, **kwargs) -> None:
        data_prefix = dict(data_prefix or self.DEFAULT_DATA_PREFIX)
        if self.DEFAULT_ANN_FILE and 'ann_file' not in kwargs:
            kwargs['ann_file'] = self.DEFAULT_ANN_FILE
        require_paths(self.DATASET_NAME, data_root,
                      [data_prefix.get('img_path'), data_prefix.get('seg_map_path'),
                       kwargs.get('ann_file')], self.LAYOUT)
        meta = self._class_metainfo(data_root)
        meta.update(metainfo or {})
        if 'synonyms' not in meta:
            classes = meta.get('classes') or self.METAINFO['classes']
            meta['synonyms'] = build_synonyms([c.strip() for c in classes],
                                              self.extra_synonyms())
        super().__init__(data_root=data_root, data_prefix=data_prefix, metainfo=meta, **kwargs)


@DATASETS.register_module()
class OpenVocabADE20KDataset(OpenVocabSemSegMixin, ADE20KDataset):
    """ADE20K-150 semantic (mmseg's classes; labels 1..150 in the PNGs, 0 = void)."""

    DATASET_NAME = 'ADE20K-150'
    LAYOUT = 'ADEChallengeData2016/: images/validation/*.jpg, annotations/validation/*.png'
    DEFAULT_DATA_PREFIX = dict(img_path='images/validation', seg_map_path='annotations/validation')

    @classmethod
    def extra_synonyms(cls):
        return ade150_extra_synonyms()


@DATASETS.register_module()
class OpenVocabCityscapesDataset(OpenVocabSemSegMixin, CityscapesDataset):
    """Cityscapes semantic, 19 train ids (cityscapesScripts' createTrainIdLabelImgs.py)."""

    DATASET_NAME = 'Cityscapes'
    LAYOUT = ('cityscapes/: leftImg8bit/val/<city>/*_leftImg8bit.png, '
              'gtFine/val/<city>/*_gtFine_labelTrainIds.png')
    DEFAULT_DATA_PREFIX = dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')


@DATASETS.register_module()
class OpenVocabPascalContext59Dataset(OpenVocabSemSegMixin, PascalContextDataset59):
    """Pascal Context 59 (mmseg's layout from tools/dataset_converters/pascal_context.py)."""

    DATASET_NAME = 'Pascal Context 59'
    LAYOUT = ('VOCdevkit/VOC2010/: JPEGImages/*.jpg, SegmentationClassContext/*.png, '
              'ImageSets/SegmentationContext/val.txt')
    DEFAULT_DATA_PREFIX = dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext')
    DEFAULT_ANN_FILE = 'ImageSets/SegmentationContext/val.txt'


@DATASETS.register_module()
class OpenVocabPascalVOCDataset(OpenVocabSemSegMixin, PascalVOCDataset):
    """Pascal VOC 2012 with background: 21 classes (PAS-21)."""

    DATASET_NAME = 'Pascal VOC-21'
    LAYOUT = ('VOCdevkit/VOC2012/: JPEGImages/*.jpg, SegmentationClass/*.png, '
              'ImageSets/Segmentation/val.txt')
    DEFAULT_DATA_PREFIX = dict(img_path='JPEGImages', seg_map_path='SegmentationClass')
    DEFAULT_ANN_FILE = 'ImageSets/Segmentation/val.txt'


@DATASETS.register_module()
class PascalVOC20Dataset(OpenVocabPascalVOCDataset):
    """Pascal VOC 2012 without background: 20 classes (PAS-20); background and the
    boundary label (255) are ignored (``reduce_zero_label``)."""

    DATASET_NAME = 'Pascal VOC-20'
    METAINFO = voc20_meta()

    def __init__(self, reduce_zero_label: bool = True, **kwargs) -> None:
        super().__init__(reduce_zero_label=reduce_zero_label, **kwargs)


class _WideLabelDataset(OpenVocabSemSegMixin, BaseSegDataset):
    """uint16 TIFF labels (void 65535) with class names from ``classes_file``."""

    NUM_CLASSES = 0
    DEFAULT_CLASSES_FILE = ''

    def __init__(self, classes_file: Optional[str] = None, img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.tif', ignore_index: int = 65535,
                 reduce_zero_label: bool = False, **kwargs) -> None:
        self.classes_file = classes_file or self.DEFAULT_CLASSES_FILE
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         ignore_index=ignore_index, reduce_zero_label=reduce_zero_label,
                         **kwargs)

    def _class_metainfo(self, data_root):
        path = join_root(data_root, self.classes_file)
        names = read_class_file(path, self.DATASET_NAME, self.NUM_CLASSES)
        return dict(classes=tuple(names), palette=palette_for(len(names), self.NUM_CLASSES))


@DATASETS.register_module()
class ADE20K847Dataset(_WideLabelDataset):
    """ADE20K-Full, 847 classes (A-847).

    Labels: ``annotations_detectron2/validation/*.tif`` (uint16 train ids, 65535
    void) as written by the MaskFormer / FC-CLIP preparation of ADE20K_2021_17_01.
    Class names: ``classes_file`` (default ``ade847_classes.txt`` in the data
    root), one class per line in train-id order; ``tools/extract_class_names.py``
    writes it from the preparation script that produced the labels.
    """

    DATASET_NAME = 'ADE20K-847'
    NUM_CLASSES = 847
    DEFAULT_CLASSES_FILE = 'ade847_classes.txt'
    LAYOUT = ('ADE20K_2021_17_01/: images_detectron2/validation/*.jpg, '
              'annotations_detectron2/validation/*.tif (uint16), ade847_classes.txt '
              '(tools/extract_class_names.py)')
    DEFAULT_DATA_PREFIX = dict(img_path='images_detectron2/validation',
                               seg_map_path='annotations_detectron2/validation')


@DATASETS.register_module()
class PascalContext459Dataset(_WideLabelDataset):
    """Pascal Context full, 459 classes (PC-459).

    Labels: ``annotations_ctx459/validation/*.tif`` (uint16, label = Pascal
    Context id - 1, 65535 void) as written by the ODISE / FC-CLIP preparation.
    Class names: Pascal Context's own ``labels.txt`` (``"<id>: <name>"``),
    ``classes_file`` (default ``../VOCdevkit/VOC2010/labels.txt`` from the data root).
    """

    DATASET_NAME = 'Pascal Context 459'
    NUM_CLASSES = 459
    DEFAULT_CLASSES_FILE = '../VOCdevkit/VOC2010/labels.txt'
    LAYOUT = ('pascal_ctx_d2/: images/validation/*.jpg, annotations_ctx459/validation/*.tif '
              '(uint16); ../VOCdevkit/VOC2010/labels.txt (class names)')
    DEFAULT_DATA_PREFIX = dict(img_path='images/validation',
                               seg_map_path='annotations_ctx459/validation')
