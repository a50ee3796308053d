"""Your own data in COCO format: the classes are the annotation file's categories.

:class:`CocoFormatDataset` (mmdet ``CocoDataset``: boxes and instance masks)
and :class:`CocoFormatPanopticDataset` (mmdet ``CocoPanopticDataset``) read
any COCO instances / panoptic file. Unlike mmdet's classes, whose class list is
COCO's 80 (or 133) names unless a config repeats the file's names, they take
the class list from the file's ``categories``, so a config only names paths:

* every category is a class, in the file's order (panoptic: things first,
  then stuff, each in file order, as mmdet's labels), unless
  ``metainfo=dict(classes=...)`` chooses some of them (mmdet's convention;
  matched by name, in that order) or ``exclude_classes`` leaves some out (a
  held-out vocabulary: their annotations are dropped, panoptic segments
  become void, the images stay);
* the names a model prompts with (``metainfo['vocabulary']``): each class's
  name (underscores read as spaces), then the ``synonyms`` a category carries
  in the file (LVIS' field), then the ``synonyms`` argument: a dict
  ``{class: [synonym, ...]}`` or a vocabulary file / string of the
  ``--vocab`` grammar whose first name of each class names the category. A
  synonym another class already has is dropped, with a warning;
* categories are matched to labels by name, so files whose category ids are
  not 1..K or not sorted work, and a wrong file or class name stops with one
  line.

The categories are read once when the data set is built (before mmdet parses
the whole file), so the metainfo is there for evaluators and the
:class:`~vitamin_dense.engine.VocabularyHook` whatever ``lazy_init`` says.
"""
from __future__ import annotations

import json
import logging
import os.path as osp
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from mmdet.datasets import CocoDataset, CocoPanopticDataset
from mmdet.datasets.api_wrappers import COCO

from ..registry import DATASETS
from ..text.vocabulary import normalize_name, parse_vocabulary, prompt_name
from ..utils.openmmlab_alias import alias_into_openmmlab
from .checks import join_root, require_paths
from .class_names import palette_for
from .errors import DatasetError
from .ov_detection_base import IdList, describe_missing
from .panoptic import NameOrderedCOCOPanoptic, OpenVocabPanopticMixin

logger = logging.getLogger(__name__)

SynonymSpec = Union[None, str, Mapping[str, Sequence[str]]]

INSTANCES_LAYOUT = ('data_root/<ann_file> (COCO instances json: images, annotations, '
                    'categories) and the images under data_root/<data_prefix.img>')
PANOPTIC_LAYOUT = ('data_root/<ann_file> (COCO panoptic json: images, annotations with '
                   'segments_info, categories with isthing), the panoptic PNGs under '
                   'data_root/<data_prefix.seg> and the images under data_root/<data_prefix.img>')


def read_categories(path: str) -> List[dict]:
    """The ``categories`` of a COCO json, checked: names present and unique, ids unique."""
    try:
        with open(path, encoding='utf-8') as f:
            categories = json.load(f).get('categories')
    except (OSError, ValueError, AttributeError) as exc:
        reason = f'{type(exc).__name__}: {exc}'.splitlines()[0]
        raise DatasetError(f'{path} is not a readable COCO json ({reason})') from None
    if not categories or not isinstance(categories, list):
        raise DatasetError(f'{path} has no categories: a COCO file lists its classes in '
                           '"categories" ([{"id": 1, "name": "cat"}, ...])')
    names, ids = set(), set()
    for cat in categories:
        if not isinstance(cat, dict) or not str(cat.get('name', '')).strip() or 'id' not in cat:
            raise DatasetError(f'{path}: every category needs an "id" and a "name" ({cat!r})')
        if cat['name'] in names or cat['id'] in ids:
            what = f"name '{cat['name']}'" if cat['name'] in names else f"id {cat['id']}"
            raise DatasetError(f'{path}: two categories have the {what}')
        names.add(cat['name'])
        ids.add(cat['id'])
    return categories


def choose_classes(categories: Sequence[dict], wanted: Optional[Sequence[str]],
                   exclude: Sequence[str], path: str) -> List[dict]:
    """The categories that become classes: ``wanted`` (by name, in that order) or all,
    minus ``exclude``; unknown names stop the run."""
    by_name = {cat['name']: cat for cat in categories}
    unknown = [n for n in list(wanted or ()) + list(exclude) if n not in by_name]
    if unknown:
        raise DatasetError(
            f'{path} has no category {describe_missing(unknown)}; its categories: '
            f"{describe_missing([c['name'] for c in categories], 8)}")
    chosen = [by_name[n] for n in wanted] if wanted else list(categories)
    dropped = set(exclude)
    chosen = [cat for cat in chosen if cat['name'] not in dropped]
    if not chosen:
        raise DatasetError(f'{path}: no class left (every category is excluded)')
    return chosen


def _synonym_table(synonyms: SynonymSpec, categories: Sequence[dict],
                   path: str) -> Dict[str, Tuple[str, ...]]:
    """``{normalised category name: extra names}`` from the ``synonyms`` argument."""
    if not synonyms:
        return {}
    if isinstance(synonyms, str):
        entries = [(c[0], c[1:]) for c in parse_vocabulary(synonyms).classes]
    elif isinstance(synonyms, Mapping):
        entries = [(str(k), (v,) if isinstance(v, str) else tuple(v))
                   for k, v in synonyms.items()]
    else:
        raise DatasetError('synonyms must be a dict {class: [synonym, ...]}, a vocabulary '
                           f'file or a "name, synonym; ..." string, not {type(synonyms).__name__}')
    known = {normalize_name(str(c['name'])) for c in categories}
    unknown = [name for name, _ in entries if normalize_name(name) not in known]
    if unknown:
        raise DatasetError(f'synonyms name {describe_missing(unknown)}, which '
                           f'{"is" if len(unknown) == 1 else "are"} no category of {path}')
    return {normalize_name(name): tuple(str(s) for s in extra) for name, extra in entries}


def class_vocabulary(chosen: Sequence[dict], table: Mapping[str, Tuple[str, ...]]
                     ) -> Tuple[Tuple[str, ...], ...]:
    """Each class's prompt names: its name, the category's own ``synonyms``, then
    ``table``'s; a name another class already has is dropped (with a warning)."""
    owner: Dict[str, str] = {normalize_name(prompt_name(str(c['name']))): c['name']
                             for c in chosen}
    vocabulary = []
    for cat in chosen:
        name = str(cat['name'])
        names = [prompt_name(name)]
        own = cat.get('synonyms') or ()
        for extra in list(own if not isinstance(own, str) else [own]) + \
                list(table.get(normalize_name(name), ())):
            extra = prompt_name(str(extra))
            key = normalize_name(extra)
            if not key or key in {normalize_name(n) for n in names}:
                continue
            if owner.setdefault(key, name) != name:
                logger.warning("synonym '%s' of class '%s' already names class '%s': dropped",
                               extra, name, owner[key])
                continue
            names.append(extra)
        vocabulary.append(tuple(names))
    return tuple(vocabulary)


def _palette(chosen: Sequence[dict]) -> List[Tuple[int, int, int]]:
    """A category's ``color`` when the file gives one (COCO panoptic does), else a fixed one."""
    fallback = palette_for(len(chosen))
    palette = []
    for i, cat in enumerate(chosen):
        color = cat.get('color')
        ok = isinstance(color, (list, tuple)) and len(color) == 3
        palette.append(tuple(int(v) for v in color) if ok else fallback[i])
    return palette


def _class_metainfo(chosen: Sequence[dict], synonyms: SynonymSpec, categories: Sequence[dict],
                    path: str, things: Sequence[str]) -> dict:
    classes = tuple(str(c['name']) for c in chosen)
    vocabulary = class_vocabulary(chosen, _synonym_table(synonyms, categories, path))
    thing_set = set(things)
    return dict(classes=classes, vocabulary=vocabulary,
                synonyms=tuple(v[1:] for v in vocabulary), palette=_palette(chosen),
                thing_classes=tuple(c for c in classes if c in thing_set),
                stuff_classes=tuple(c for c in classes if c not in thing_set))


class NameOrderedCOCO(COCO):
    """mmdet's COCO API whose ``get_cat_ids(cat_names=...)`` follows the order of the names
    (pycocotools' follows the file), so label ``i`` is always ``classes[i]``."""

    def get_cat_ids(self, cat_names=[], sup_names=[], cat_ids=[]):  # noqa: B006 (mmdet's API)
        if cat_names and not sup_names and not cat_ids:
            id_of = {cat['name']: cat['id'] for cat in self.dataset['categories']}
            return IdList(id_of[n] for n in cat_names)
        return super().get_cat_ids(cat_names, sup_names, cat_ids)


@DATASETS.register_module()
class CocoFormatDataset(CocoDataset):
    """Detection / instance segmentation data in COCO format, classes from the file.

    Args:
        ann_file: the COCO instances json (relative to ``data_root``).
        exclude_classes: category names left out of this data set (e.g. a
            vocabulary held out of training and evaluated on its own).
        synonyms: more names per class (see the module doc).
        metainfo: ``classes`` picks categories by name, in that order; other
            keys (e.g. ``palette``) are kept.
        **kwargs: everything mmdet's ``CocoDataset`` takes (``data_root``,
            ``data_prefix=dict(img=...)``, ``filter_cfg``, ``pipeline``,
            ``test_mode``, ``indices``, ...).
    """

    METAINFO = dict(classes=(), palette=[])
    COCOAPI = NameOrderedCOCO

    def __init__(self, ann_file: str = '', data_root: Optional[str] = None,
                 data_prefix: Optional[dict] = None, metainfo: Optional[dict] = None,
                 exclude_classes: Sequence[str] = (), synonyms: SynonymSpec = None,
                 backend_args: Optional[dict] = None, **kwargs) -> None:
        data_prefix = dict(data_prefix or dict(img=''))
        require_paths('COCO-format data set', data_root, [ann_file, data_prefix.get('img')],
                      INSTANCES_LAYOUT)
        path = join_root(data_root, ann_file)
        categories = read_categories(path)
        metainfo = dict(metainfo or {})
        chosen = choose_classes(categories, metainfo.pop('classes', None),
                                tuple(exclude_classes), path)
        meta = _class_metainfo(chosen, synonyms, categories, path,
                               things=[c['name'] for c in chosen])
        meta.update(metainfo)
        super().__init__(ann_file=ann_file, data_root=data_root, data_prefix=data_prefix,
                         metainfo=meta, backend_args=backend_args, **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        if data_list and not osp.exists(data_list[0]['img_path']) and \
                '://' not in data_list[0]['img_path']:
            raise DatasetError(f"image not found: {data_list[0]['img_path']} (file_name of the "
                               f'first image of {self.ann_file}, under data_prefix.img); '
                               f'expected layout: {INSTANCES_LAYOUT}')
        return data_list


@DATASETS.register_module()
class CocoFormatPanopticDataset(OpenVocabPanopticMixin, CocoPanopticDataset):
    """Panoptic data in COCO panoptic format (panopticapi's), classes from the file.

    Args as :class:`CocoFormatDataset`; ``data_prefix=dict(img=..., seg=...)``
    names the image and panoptic PNG folders. Categories need ``isthing``;
    things come first in the label order, then stuff.
    """

    METAINFO = dict(classes=(), thing_classes=(), stuff_classes=(), palette=[])
    COCOAPI = NameOrderedCOCOPanoptic
    DATASET_NAME = 'COCO-format panoptic data set'
    LAYOUT = PANOPTIC_LAYOUT

    def __init__(self, ann_file: str = '', data_root: Optional[str] = None,
                 data_prefix: Optional[dict] = None, metainfo: Optional[dict] = None,
                 exclude_classes: Sequence[str] = (), synonyms: SynonymSpec = None,
                 **kwargs) -> None:
        self._class_args = (dict(metainfo or {}), tuple(exclude_classes), synonyms)
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=data_prefix or dict(img='', seg=''), metainfo=None,
                         **kwargs)

    def default_metainfo(self, data_root: Optional[str], ann_file: str) -> dict:
        """The class metainfo of the file (called by the mixin once its files are checked)."""
        metainfo, exclude, synonyms = self._class_args
        metainfo = dict(metainfo)
        path = join_root(data_root, ann_file)
        categories = read_categories(path)
        missing = [c['name'] for c in categories if 'isthing' not in c]
        if missing:
            raise DatasetError(f'{path}: categories {describe_missing(missing)} have no '
                               '"isthing" (a COCO panoptic file says which are things)')
        chosen = choose_classes(categories, metainfo.pop('classes', None), exclude, path)
        chosen = [c for c in chosen if c['isthing']] + [c for c in chosen if not c['isthing']]
        meta = _class_metainfo(chosen, synonyms, categories, path,
                               things=[c['name'] for c in chosen if c['isthing']])
        meta.update(metainfo)
        return meta


# stock mmdet configs (default_scope='mmdet') and DetInferencer can name them too
alias_into_openmmlab(CocoFormatDataset, 'DATASETS', packages=('mmdet',))
alias_into_openmmlab(CocoFormatPanopticDataset, 'DATASETS', packages=('mmdet',))

__all__ = ['CocoFormatDataset', 'CocoFormatPanopticDataset', 'read_categories',
           'choose_classes', 'class_vocabulary']
