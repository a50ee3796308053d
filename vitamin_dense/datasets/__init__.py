"""Data sets and transforms (through mmdet / mmseg pipelines), synthetic data, vocabularies.

The synthetic generator, the split definitions and the vocabularies need no
OpenMMLab package and import with this package; the data set classes (mmdet /
mmseg subclasses) live in :mod:`vitamin_dense.datasets.openmmlab`, imported
(and registered) with ``vitamin_dense`` when mmdet and mmseg are installed, or
on first use of one of their names here.
"""
from . import class_names  # noqa: F401  (registers the dataset:NAME vocabularies)
from .errors import DatasetError, DatasetFileError
from .ov_splits import OV_COCO_BASE_CLASSES, OV_COCO_NOVEL_CLASSES, ov_coco_classes
from .synthetic import (DEFAULT_STUFF, DEFAULT_THINGS, DEFAULT_UNSEEN, SyntheticSpec,
                        ensure_synthetic, generate_split, render_sample, synthetic_metainfo,
                        synthetic_vocabulary)

__all__ = ['DatasetError', 'DatasetFileError', 'SyntheticSpec', 'ensure_synthetic',
           'generate_split', 'render_sample', 'synthetic_metainfo', 'synthetic_vocabulary',
           'DEFAULT_THINGS', 'DEFAULT_STUFF', 'DEFAULT_UNSEEN', 'OV_COCO_BASE_CLASSES',
           'OV_COCO_NOVEL_CLASSES', 'ov_coco_classes']

_OPENMMLAB_NAMES = (
    'SyntheticPanopticDataset', 'SyntheticDetectionDataset', 'SyntheticSemanticDataset',
    'OVCocoDataset', 'OVLVISDataset', 'OpenVocabCocoPanopticDataset',
    'OpenVocabADE20KPanopticDataset', 'CityscapesPanopticDataset', 'MapillaryPanopticDataset',
    'OpenVocabADE20KDataset', 'ADE20K847Dataset', 'OpenVocabCityscapesDataset',
    'OpenVocabPascalContext59Dataset', 'PascalContext459Dataset', 'OpenVocabPascalVOCDataset',
    'PascalVOC20Dataset', 'LoadWideSemSegAnnotations', 'PILResize')


def __getattr__(name: str):
    if name in _OPENMMLAB_NAMES:
        from . import openmmlab
        return getattr(openmmlab, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
