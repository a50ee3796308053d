"""Semantic segmentation data sets through mmseg's ``BaseSegDataset`` family.

Thin subclasses of mmseg's classes (ADE20K-150, Cityscapes, Pascal Context 59,
Pascal VOC) add a check of the files before loading (one-line
:class:`DatasetError` with the expected layout) and ``synonyms`` in the
metainfo. ADE20K-847 and Pascal Context 459, which mmseg lacks, read uint16
TIFF labels (use ``LoadWideSemSegAnnotations``; void = 65535); their class
names are FC-CLIP's (in the label order of the FC-CLIP / ODISE preparation),
or come from a file (``classes_file``). The metainfo's ``vocabulary`` holds
FC-CLIP's names and synonyms for each class (see ``class_names.py``). Pascal
VOC-20 is VOC without the background class (background -> ignore).
"""
from __future__ import annotations

from typing import Dict, Optional

from mmseg.datasets import (ADE20KDataset, BaseSegDataset, CityscapesDataset,
                            PascalContextDataset59, PascalVOCDataset)

from ..registry import DATASETS
from .checks import join_root, require_paths
from .class_names import (ade150_extra_synonyms, fcclip_vocabulary, merge_class_metainfo,
                          palette_for, read_class_file, voc20_meta)


class OpenVocabSemSegMixin:
    """File checks and synonyms for mmseg data sets (see the module doc)."""

    DATASET_NAME = 'semantic data set'
    LAYOUT = ''
    DEFAULT_DATA_PREFIX: Dict[str, str] = {}
    DEFAULT_ANN_FILE = ''
    FCCLIP_VOCABULARY = ''  # name of the data set's file in vocabularies/

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
        meta = merge_class_metainfo(self._class_metainfo(data_root), metainfo,
                                    self.FCCLIP_VOCABULARY, self.METAINFO.get('classes', ()),
                                    self.extra_synonyms())
        super().__init__(data_root=data_root, data_prefix=data_prefix, metainfo=meta, **kwargs)


@DATASETS.register_module()
class OpenVocabADE20KDataset(OpenVocabSemSegMixin, ADE20KDataset):
    """ADE20K-150 semantic (mmseg's classes; labels 1..150 in the PNGs, 0 = void)."""

    FCCLIP_VOCABULARY = 'ade150'
    DATASET_NAME = 'ADE20K-150'
    LAYOUT = 'ADEChallengeData2016/: images/validation/*.jpg, annotations/validation/*.png'
    DEFAULT_DATA_PREFIX = dict(img_path='images/validation', seg_map_path='annotations/validation')

    @classmethod
    def extra_synonyms(cls):
        return ade150_extra_synonyms()


@DATASETS.register_module()
class OpenVocabCityscapesDataset(OpenVocabSemSegMixin, CityscapesDataset):
    """Cityscapes semantic, 19 train ids (cityscapesScripts' createTrainIdLabelImgs.py)."""

    FCCLIP_VOCABULARY = 'cityscapes'
    DATASET_NAME = 'Cityscapes'
    LAYOUT = ('cityscapes/: leftImg8bit/val/<city>/*_leftImg8bit.png, '
              'gtFine/val/<city>/*_gtFine_labelTrainIds.png')
    DEFAULT_DATA_PREFIX = dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')


@DATASETS.register_module()
class OpenVocabPascalContext59Dataset(OpenVocabSemSegMixin, PascalContextDataset59):
    """Pascal Context 59 (mmseg's layout from tools/dataset_converters/pascal_context.py)."""

    FCCLIP_VOCABULARY = 'pc59'
    DATASET_NAME = 'Pascal Context 59'
    LAYOUT = ('VOCdevkit/VOC2010/: JPEGImages/*.jpg, SegmentationClassContext/*.png, '
              'ImageSets/SegmentationContext/val.txt')
    DEFAULT_DATA_PREFIX = dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext')
    DEFAULT_ANN_FILE = 'ImageSets/SegmentationContext/val.txt'


@DATASETS.register_module()
class OpenVocabPascalVOCDataset(OpenVocabSemSegMixin, PascalVOCDataset):
    """Pascal VOC 2012 with background: 21 classes (PAS-21)."""

    FCCLIP_VOCABULARY = 'voc21'
    DATASET_NAME = 'Pascal VOC-21'
    LAYOUT = ('VOCdevkit/VOC2012/: JPEGImages/*.jpg, SegmentationClass/*.png, '
              'ImageSets/Segmentation/val.txt')
    DEFAULT_DATA_PREFIX = dict(img_path='JPEGImages', seg_map_path='SegmentationClass')
    DEFAULT_ANN_FILE = 'ImageSets/Segmentation/val.txt'


@DATASETS.register_module()
class PascalVOC20Dataset(OpenVocabPascalVOCDataset):
    """Pascal VOC 2012 without background: 20 classes (PAS-20); background and the
    boundary label (255) are ignored (``reduce_zero_label``)."""

    FCCLIP_VOCABULARY = 'voc20'
    DATASET_NAME = 'Pascal VOC-20'
    METAINFO = voc20_meta()

    def __init__(self, reduce_zero_label: bool = True, **kwargs) -> None:
        super().__init__(reduce_zero_label=reduce_zero_label, **kwargs)


class _WideLabelDataset(OpenVocabSemSegMixin, BaseSegDataset):
    """uint16 TIFF labels (void 65535); class names FC-CLIP's, or from ``classes_file``.

    With the default names the metainfo's ``vocabulary`` is FC-CLIP's (names
    and synonyms). A ``classes_file`` (one class per line, or ``"<id>: <name>"``
    lines, in label order) replaces both: its names, with their own synonyms.
    """

    NUM_CLASSES = 0

    def __init__(self, classes_file: Optional[str] = None, img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.tif', ignore_index: int = 65535,
                 reduce_zero_label: bool = False, **kwargs) -> None:
        self.classes_file = classes_file
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         ignore_index=ignore_index, reduce_zero_label=reduce_zero_label,
                         **kwargs)

    def _class_metainfo(self, data_root):
        if self.classes_file:
            path = join_root(data_root, self.classes_file)
            names = tuple(read_class_file(path, self.DATASET_NAME, self.NUM_CLASSES))
            return dict(classes=names, palette=palette_for(len(names), self.NUM_CLASSES))
        vocabulary = fcclip_vocabulary(self.FCCLIP_VOCABULARY)
        return dict(classes=tuple(c[0] for c in vocabulary), vocabulary=vocabulary,
                    palette=palette_for(len(vocabulary), self.NUM_CLASSES))


@DATASETS.register_module()
class ADE20K847Dataset(_WideLabelDataset):
    """ADE20K-Full, 847 classes (A-847).

    Labels: ``annotations_detectron2/validation/*.tif`` (uint16 train ids, 65535
    void) as written by the MaskFormer / FC-CLIP preparation of ADE20K_2021_17_01
    (``prepare_ade20k_full_sem_seg.py``), whose train-id order FC-CLIP's names follow.
    """

    FCCLIP_VOCABULARY = 'ade847'
    DATASET_NAME = 'ADE20K-847'
    NUM_CLASSES = 847
    LAYOUT = ('ADE20K_2021_17_01/: images_detectron2/validation/*.jpg, '
              'annotations_detectron2/validation/*.tif (uint16; MaskFormer\'s / FC-CLIP\'s '
              'prepare_ade20k_full_sem_seg.py)')
    DEFAULT_DATA_PREFIX = dict(img_path='images_detectron2/validation',
                               seg_map_path='annotations_detectron2/validation')


@DATASETS.register_module()
class PascalContext459Dataset(_WideLabelDataset):
    """Pascal Context full, 459 classes (PC-459).

    Labels: ``annotations_ctx459/validation/*.tif`` (uint16, label = Pascal
    Context id - 1, 65535 void) as written by the ODISE / FC-CLIP preparation;
    FC-CLIP's names follow Pascal Context's id order (its ``labels.txt``).
    """

    FCCLIP_VOCABULARY = 'pc459'
    DATASET_NAME = 'Pascal Context 459'
    NUM_CLASSES = 459
    LAYOUT = ('pascal_ctx_d2/: images/validation/*.jpg, annotations_ctx459/validation/*.tif '
              '(uint16; ODISE\'s / FC-CLIP\'s prepare_pascal_ctx_full_sem_seg.py)')
    DEFAULT_DATA_PREFIX = dict(img_path='images/validation',
                               seg_map_path='annotations_ctx459/validation')
