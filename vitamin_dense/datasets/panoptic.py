"""Panoptic data sets (COCO panoptic layout) through mmdet's ``CocoPanopticDataset``.

Thin subclasses add what mmdet lacks for open-vocabulary evaluation:

* a check of the files before anything loads (one-line :class:`DatasetError`
  naming the missing file and the expected layout);
* the names a model prompts with in the metainfo (``vocabulary``: FC-CLIP's
  curated names and synonyms, see ``class_names.py``; ``synonyms`` built from
  the class names when a config's own classes are not the data set's), and
  the class lists from mmdet / mmseg;
* categories matched to classes *by name*, in the order of
  ``metainfo['classes']`` (things first), so annotation files whose category
  order differs (Cityscapes puts stuff and things in label-id order) still give
  mmdet's label convention (things ``0..T-1``, stuff after, 255 = void);
* the panoptic PNG named by the annotation's ``file_name`` (Cityscapes' differ
  from the image names), and images in per-city folders for Cityscapes.
"""
from __future__ import annotations

import json
import os.path as osp
from typing import Dict, List, Optional

from mmdet.datasets import ADE20KPanopticDataset, CocoPanopticDataset
from mmdet.datasets.api_wrappers import COCOPanoptic

from ..registry import DATASETS
from .checks import join_root, require_paths
from .class_names import (ade150_extra_synonyms, cityscapes_meta, coco_panoptic_meta,
                          mapillary_meta, merge_class_metainfo)
from .errors import DatasetError


class _MissingCategories(KeyError):
    pass


def use_annotation_file_names(api: COCOPanoptic) -> None:
    """Point each image's ``segm_file`` at its annotation's PNG: mmdet derives it from
    the image name (``x.jpg`` -> ``x.png``), which Cityscapes / Mapillary do not follow."""
    for ann in api.dataset.get('annotations', []):
        img = api.imgs.get(ann['image_id'])
        if img is not None and ann.get('file_name'):
            img['segm_file'] = ann['file_name']


class NameOrderedCOCOPanoptic(COCOPanoptic):
    """mmdet's COCOPanoptic API with two fixes for other data sets' files:
    ``get_cat_ids(cat_names=...)`` follows the order of the names (and fails on
    a name the file lacks), and ``segm_file`` is the annotation's own file name."""

    def createIndex(self) -> None:  # noqa: N802 (pycocotools' name)
        super().createIndex()
        use_annotation_file_names(self)

    def get_cat_ids(self, cat_names=[], sup_names=[], cat_ids=[]):  # noqa: B006 (mmdet's API)
        if cat_names and not sup_names and not cat_ids:
            id_of = {cat['name']: cid for cid, cat in self.cats.items()}
            missing = [n for n in cat_names if n not in id_of]
            if missing:
                raise _MissingCategories(missing)
            return [id_of[n] for n in cat_names]
        return super().get_cat_ids(cat_names, sup_names, cat_ids)


class OpenVocabPanopticMixin:
    """Shared behaviour of our panoptic data sets (see the module doc)."""

    DATASET_NAME = 'panoptic data set'
    LAYOUT = ''
    DEFAULT_ANN_FILE = ''
    DEFAULT_DATA_PREFIX: Dict[str, str] = {}
    COCOAPI = NameOrderedCOCOPanoptic
    FCCLIP_VOCABULARY = ''  # name of the data set's file in vocabularies/

    @classmethod
    def default_metainfo(cls, data_root: Optional[str], ann_file: str) -> dict:
        return {}

    @classmethod
    def extra_synonyms(cls) -> Optional[dict]:
        return None

    def __init__(self, data_root: Optional[str] = None, ann_file: str = '',
                 data_prefix: Optional[dict] = None, metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        ann_file = ann_file or self.DEFAULT_ANN_FILE
        data_prefix = dict(data_prefix or self.DEFAULT_DATA_PREFIX)
        require_paths(self.DATASET_NAME, data_root,
                      [ann_file, data_prefix.get('img'), data_prefix.get('seg')], self.LAYOUT)
        meta = merge_class_metainfo(self.default_metainfo(data_root, ann_file), metainfo,
                                    self.FCCLIP_VOCABULARY, self.METAINFO['classes'],
                                    self.extra_synonyms())
        super().__init__(data_root=data_root, ann_file=ann_file, data_prefix=data_prefix,
                         metainfo=meta, **kwargs)

    def load_data_list(self) -> List[dict]:
        try:
            return super().load_data_list()
        except _MissingCategories as exc:
            missing = exc.args[0]
            raise DatasetError(
                f'{self.DATASET_NAME}: {self.ann_file} has no category named '
                f"{', '.join(repr(m) for m in missing[:5])}"
                f"{' ...' if len(missing) > 5 else ''} ({len(missing)} of "
                f"{len(self.metainfo['classes'])} classes missing): is it the right annotation "
                'file, or do the config\'s metainfo classes differ?') from None

    def image_path(self, file_name: str) -> str:
        return osp.join(self.data_prefix['img'], file_name)

    def parse_data_info(self, raw_data_info: dict) -> dict:
        # segments of categories outside the classes (e.g. an 'unlabeled' category) are void
        raw_data_info = dict(raw_data_info, raw_ann_info=[
            a for a in raw_data_info['raw_ann_info'] if a['category_id'] in self.cat2label])
        info = super().parse_data_info(raw_data_info)
        img_info = raw_data_info['raw_img_info']
        info['img_path'] = self.image_path(img_info['file_name'])
        if self.data_prefix.get('seg'):
            info['seg_map_path'] = osp.join(self.data_prefix['seg'], img_info['segm_file'])
        return info


@DATASETS.register_module()
class OpenVocabCocoPanopticDataset(OpenVocabPanopticMixin, CocoPanopticDataset):
    """COCO panoptic (133 classes: 80 things, 53 stuff), the training set."""

    FCCLIP_VOCABULARY = 'coco_panoptic'
    DATASET_NAME = 'COCO panoptic'
    LAYOUT = ('annotations/panoptic_{train,val}2017.json, annotations/panoptic_{train,val}2017/'
              '*.png, {train,val}2017/*.jpg (and annotations/instances_val2017.json for mask AP)')
    DEFAULT_ANN_FILE = 'annotations/panoptic_val2017.json'
    DEFAULT_DATA_PREFIX = dict(img='val2017/', seg='annotations/panoptic_val2017/')

    @classmethod
    def default_metainfo(cls, data_root, ann_file):
        return coco_panoptic_meta()


@DATASETS.register_module()
class OpenVocabADE20KPanopticDataset(OpenVocabPanopticMixin, ADE20KPanopticDataset):
    """ADE20K-150 panoptic (100 things, 50 stuff), mmdet's class list."""

    FCCLIP_VOCABULARY = 'ade150'
    DATASET_NAME = 'ADE20K-150 panoptic'
    LAYOUT = ('ADEChallengeData2016/: images/validation/*.jpg, ade20k_panoptic_val.json, '
              'ade20k_panoptic_val/*.png (mmdet tools/dataset_converters/ade20k2coco.py)')
    DEFAULT_ANN_FILE = 'ade20k_panoptic_val.json'
    DEFAULT_DATA_PREFIX = dict(img='images/validation/', seg='ade20k_panoptic_val/')

    @classmethod
    def extra_synonyms(cls):
        return ade150_extra_synonyms()


@DATASETS.register_module()
class CityscapesPanopticDataset(OpenVocabPanopticMixin, CocoPanopticDataset):
    """Cityscapes panoptic (19 classes: 8 things first, then 11 stuff).

    Files from cityscapesScripts' ``createPanopticImgs.py``; images live in
    per-city folders (``leftImg8bit/val/<city>/<name>_leftImg8bit.png``).
    """

    FCCLIP_VOCABULARY = 'cityscapes'
    DATASET_NAME = 'Cityscapes panoptic'
    METAINFO = cityscapes_meta()
    LAYOUT = ('cityscapes/: leftImg8bit/val/<city>/*_leftImg8bit.png, '
              'gtFine/cityscapes_panoptic_val.json, gtFine/cityscapes_panoptic_val/*.png '
              '(cityscapesscripts/preparation/createPanopticImgs.py)')
    DEFAULT_ANN_FILE = 'gtFine/cityscapes_panoptic_val.json'
    DEFAULT_DATA_PREFIX = dict(img='leftImg8bit/val/', seg='gtFine/cityscapes_panoptic_val/')

    def image_path(self, file_name: str) -> str:
        city = file_name.split('_')[0]
        direct = osp.join(self.data_prefix['img'], file_name)
        return direct if osp.exists(direct) else osp.join(self.data_prefix['img'], city,
                                                          file_name)


@DATASETS.register_module()
class MapillaryPanopticDataset(OpenVocabPanopticMixin, CocoPanopticDataset):
    """Mapillary Vistas v1.2 panoptic (65 classes; things / stuff from the file's
    ``isthing`` flags, things first)."""

    FCCLIP_VOCABULARY = 'mapillary'
    DATASET_NAME = 'Mapillary Vistas panoptic'
    METAINFO = mapillary_meta()
    LAYOUT = ('mapillary_vistas/: validation/images/*.jpg, validation/panoptic/'
              'panoptic_2018.json, validation/panoptic/*.png')
    DEFAULT_ANN_FILE = 'validation/panoptic/panoptic_2018.json'
    DEFAULT_DATA_PREFIX = dict(img='validation/images/', seg='validation/panoptic/')

    @classmethod
    def default_metainfo(cls, data_root, ann_file):
        path = join_root(data_root, ann_file)
        try:
            with open(path, encoding='utf-8') as f:
                categories = json.load(f)['categories']
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f'{cls.DATASET_NAME}: cannot read categories of {path}: {exc}')
        isthing = {c['name']: bool(c.get('isthing')) for c in categories}
        base = cls.METAINFO
        palette = dict(zip(base['classes'], base['palette']))
        names = [n for n in base['classes'] if n in isthing]
        if len(names) != len(base['classes']):
            missing = [n for n in base['classes'] if n not in isthing]
            raise DatasetError(f'{cls.DATASET_NAME}: {path} has no category named '
                               f"{', '.join(map(repr, missing[:5]))} (v1.2 annotations expected)")
        things = tuple(n for n in names if isthing[n])
        stuff = tuple(n for n in names if not isthing[n])
        classes = things + stuff
        return dict(classes=classes, thing_classes=things, stuff_classes=stuff,
                    palette=[tuple(palette[c]) for c in classes])
