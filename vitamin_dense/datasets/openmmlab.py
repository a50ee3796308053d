"""The data sets built on mmdet / mmseg; importing this module registers them.

Also makes them reachable from mmdet's and mmseg's own registries, so that
stock tools (``DetInferencer``, ``MMSegInferencer``) build them in their scope.
"""
from ..utils.openmmlab_alias import alias_into_openmmlab
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

# Stock tools (mmdet's DetInferencer, mmseg's MMSegInferencer) build data sets
# in their own scope: make ours reachable there too.
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

__all__ = [
    'SyntheticPanopticDataset', 'SyntheticDetectionDataset', 'SyntheticSemanticDataset',
    'OVCocoDataset', 'OVLVISDataset', 'OpenVocabCocoPanopticDataset',
    'OpenVocabADE20KPanopticDataset', 'CityscapesPanopticDataset', 'MapillaryPanopticDataset',
    'OpenVocabADE20KDataset', 'ADE20K847Dataset', 'OpenVocabCityscapesDataset',
    'OpenVocabPascalContext59Dataset', 'PascalContext459Dataset', 'OpenVocabPascalVOCDataset',
    'PascalVOC20Dataset', 'LoadWideSemSegAnnotations', 'PILResize']
