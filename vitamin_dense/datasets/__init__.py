"""Data sets and transforms (through mmdet / mmseg pipelines), synthetic data, vocabularies.

The synthetic generator, the split definitions and the vocabularies need no
OpenMMLab package; the data set classes (mmdet / mmseg subclasses) are
registered when those import.
"""
from ..utils.imports import openmmlab_available
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

if openmmlab_available():
    from .ov_coco import OVCocoDataset
    from .ov_lvis import OVLVISDataset
    from .synthetic_dataset import (SyntheticDetectionDataset, SyntheticPanopticDataset,
                                    SyntheticSemanticDataset)
    from .panoptic import (CityscapesPanopticDataset, MapillaryPanopticDataset,
                           OpenVocabADE20KPanopticDataset, OpenVocabCocoPanopticDataset)
    from .semantic import (ADE20K847Dataset, OpenVocabADE20KDataset, OpenVocabCityscapesDataset,
                           OpenVocabPascalContext59Dataset, OpenVocabPascalVOCDataset,
                           PascalContext459Dataset, PascalVOC20Dataset)
    from .transforms import LoadWideSemSegAnnotations, PILResize
    __all__ += ['SyntheticPanopticDataset', 'SyntheticDetectionDataset',
                'SyntheticSemanticDataset', 'OVCocoDataset', 'OVLVISDataset',
                'OpenVocabCocoPanopticDataset', 'OpenVocabADE20KPanopticDataset',
                'CityscapesPanopticDataset', 'MapillaryPanopticDataset', 'OpenVocabADE20KDataset',
                'ADE20K847Dataset', 'OpenVocabCityscapesDataset',
                'OpenVocabPascalContext59Dataset', 'PascalContext459Dataset',
                'OpenVocabPascalVOCDataset', 'PascalVOC20Dataset', 'LoadWideSemSegAnnotations',
                'PILResize']

    # Stock tools (mmdet's DetInferencer, mmseg's MMSegInferencer) build data sets
    # in their own scope: make ours reachable there too.
    from ..utils.openmmlab_alias import alias_into_openmmlab
    for _cls in (SyntheticPanopticDataset, SyntheticDetectionDataset, CityscapesPanopticDataset,
                 MapillaryPanopticDataset, OpenVocabADE20KPanopticDataset,
                 OpenVocabCocoPanopticDataset):
        alias_into_openmmlab(_cls, 'DATASETS', packages=('mmdet',))
    for _cls in (SyntheticSemanticDataset, ADE20K847Dataset, OpenVocabADE20KDataset,
                 OpenVocabCityscapesDataset, OpenVocabPascalContext59Dataset,
                 OpenVocabPascalVOCDataset, PascalContext459Dataset, PascalVOC20Dataset):
        alias_into_openmmlab(_cls, 'DATASETS', packages=('mmseg',))
    alias_into_openmmlab(LoadWideSemSegAnnotations, 'TRANSFORMS', packages=('mmseg',))
    alias_into_openmmlab(PILResize, 'TRANSFORMS', packages=('mmdet', 'mmseg'))
