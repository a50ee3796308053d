"""OV-LVIS: LVIS v1 with the rare categories held out as novel (ViLD, F-VLM, F-ViT, OWL-ViT).

:class:`OVLVISDataset` is mmdet's :class:`~mmdet.datasets.LVISV1Dataset`
with the open-vocabulary split read from the annotation file itself:

* classes, synonyms and the frequency group (``r`` / ``c`` / ``f``) of every
  category come from the json's ``categories`` (ordered by category id, which
  for LVIS v1 is mmdet's 1203-class order);
* rare categories are novel (``novel_frequencies=('r',)``); ``class_subset=
  'base'`` drops their annotations (training), ``'all'`` keeps everything
  (evaluation); labels always index the full class list;
* ``image_counts`` (the json's per-category ``image_count``, when every
  category has one) let detectors draw federated negatives by frequency;
* each sample also carries ``neg_labels`` and ``not_exhaustive_labels`` (the
  LVIS federated annotation, as label indices, restricted to the kept
  classes) for detectors that train with federated or pseudo-negative losses.

Image paths follow mmdet: the path part of ``coco_url``
(``train2017/000000391895.jpg``) under ``data_root`` + ``data_prefix['img']``;
files without ``coco_url`` use ``file_name``.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence
from urllib.parse import urlparse

from mmdet.datasets import LVISV1Dataset
from mmengine.fileio import get_local_path

from ..registry import DATASETS
from ..text.vocabulary import normalize_name
from ..utils.openmmlab_alias import alias_into_openmmlab
from .ov_detection_base import (DatasetError, IdList, OpenVocabFilterMixin, annotation_error,
                                check_class_subset, check_first_image, describe_missing,
                                require_file)
from .ov_splits import (LVIS_FREQUENCIES, LVIS_NOVEL_FREQUENCIES, dedupe_synonyms,
                        labels_in_subset, random_palette, split_metainfo)

OV_LVIS_LAYOUT = ('data/lvis_v1/annotations/lvis_v1_{train,val}.json with the COCO 2017 images '
                  'in data/lvis_v1/{train,val}2017/')


@DATASETS.register_module()
class OVLVISDataset(OpenVocabFilterMixin, LVISV1Dataset):
    """LVIS v1 (or any LVIS-format file) with a frequency-based base / novel split.

    Args:
        class_subset: ``'base'`` (drop novel-class annotations: OV training),
            ``'all'`` (evaluation) or ``'novel'``.
        novel_frequencies: LVIS frequency groups treated as novel; default
            ``('r',)`` (rare), the OV-LVIS benchmark.
        keep_empty_images: keep images without an annotation of the kept
            classes (default True: LVIS evaluation counts false positives on
            them through ``neg_category_ids``; training drops them with
            ``filter_cfg=dict(filter_empty_gt=True)``).
        **kwargs: everything mmdet's ``LVISV1Dataset`` takes. A
            ``metainfo=dict(classes=...)`` restricts the data set to those
            categories (matched by name) in that label order.
    """

    def __init__(self, *args, class_subset: str = 'all',
                 novel_frequencies: Sequence[str] = LVIS_NOVEL_FREQUENCIES,
                 keep_empty_images: bool = True, **kwargs) -> None:
        self.class_subset = check_class_subset(class_subset)
        bad = [f for f in novel_frequencies if f not in LVIS_FREQUENCIES]
        if bad:
            raise DatasetError(f'novel_frequencies must be among {LVIS_FREQUENCIES}, got {bad}')
        self.novel_frequencies = tuple(novel_frequencies)
        self.keep_empty_images = keep_empty_images
        metainfo = kwargs.get('metainfo', args[1] if len(args) > 1 else None)
        self._user_classes = bool(isinstance(metainfo, Mapping) and 'classes' in metainfo)
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        require_file(self.ann_file, 'OV-LVIS annotation file', OV_LVIS_LAYOUT, self.backend_args)
        from lvis import LVIS
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            try:
                self.lvis = LVIS(local_path)
                categories = sorted(self.lvis.dataset['categories'], key=lambda c: c['id'])
            except (ValueError, KeyError, TypeError, AssertionError) as exc:
                raise annotation_error(self.ann_file, 'LVIS', exc) from exc
        selected = self._select_categories(categories)
        self._set_split_metainfo(selected)

        keep = labels_in_subset(self._metainfo['is_novel'], self.class_subset)
        self.cat_ids = IdList(selected[i]['id'] for i in keep)
        self.cat2label = {cat_id: label for cat_id, label in zip(self.cat_ids, keep)}
        kept_ids = set(self.cat_ids)

        data_list, total_ann_ids = [], []
        try:
            for img_id in self.lvis.get_img_ids():
                raw_img_info = dict(self.lvis.load_imgs([img_id])[0])
                raw_img_info['img_id'] = img_id
                raw_img_info['file_name'] = _image_file(raw_img_info)
                ann_ids = self.lvis.get_ann_ids(img_ids=[img_id])
                raw_ann_info = self.lvis.load_anns(ann_ids)
                total_ann_ids.extend(ann_ids)
                if not self.keep_empty_images and \
                        not any(ann['category_id'] in kept_ids for ann in raw_ann_info):
                    continue
                info = self.parse_data_info(
                    dict(raw_ann_info=raw_ann_info, raw_img_info=raw_img_info))
                info['neg_labels'] = self._labels(raw_img_info.get('neg_category_ids', ()))
                info['not_exhaustive_labels'] = self._labels(
                    raw_img_info.get('not_exhaustive_category_ids', ()))
                data_list.append(info)
        except (KeyError, TypeError, ValueError) as exc:
            raise annotation_error(self.ann_file, 'LVIS', exc) from exc
        if self.ANN_ID_UNIQUE and len(set(total_ann_ids)) != len(total_ann_ids):
            raise DatasetError(f'annotation ids in {self.ann_file} are not unique')
        del self.lvis
        check_first_image(data_list, OV_LVIS_LAYOUT, self.backend_args)
        return data_list

    def _labels(self, cat_ids) -> List[int]:
        return sorted(self.cat2label[c] for c in cat_ids if c in self.cat2label)

    def _select_categories(self, categories: List[dict]) -> List[dict]:
        """The json categories of the data set's classes, in label order."""
        no_freq = [c.get('name', c.get('id')) for c in categories
                   if c.get('frequency') not in LVIS_FREQUENCIES]
        if no_freq:
            raise DatasetError(
                f"{self.ann_file}: categories {describe_missing(no_freq)} have no LVIS "
                "'frequency' (r/c/f); OV-LVIS needs an LVIS v1 annotation file")
        if not self._user_classes:
            return categories
        by_name: Dict[str, dict] = {normalize_name(c['name']): c for c in categories}
        classes = tuple(self._metainfo['classes'])
        missing = [n for n in classes if normalize_name(n) not in by_name]
        if missing:
            raise DatasetError(f'{self.ann_file} has no category {describe_missing(missing)} '
                               '(metainfo classes must be LVIS category names)')
        return [by_name[normalize_name(n)] for n in classes]

    def _set_split_metainfo(self, selected: List[dict]) -> None:
        meta = self._metainfo
        classes = tuple(meta['classes']) if self._user_classes else \
            tuple(c['name'] for c in selected)
        frequencies = tuple(c['frequency'] for c in selected)
        synonyms = dedupe_synonyms([(name,) + tuple(c.get('synonyms') or ())
                                    for name, c in zip(classes, selected)])
        palette = meta.get('palette')
        if not palette or len(palette) != len(classes):
            palette = random_palette(len(classes))
        if all('image_count' in c for c in selected):  # federated negatives are drawn by it
            meta['image_counts'] = tuple(int(c['image_count']) for c in selected)
        meta.update(classes=classes, synonyms=synonyms, frequencies=frequencies,
                    palette=palette, class_subset=self.class_subset,
                    novel_frequencies=self.novel_frequencies,
                    **split_metainfo(classes, [f in self.novel_frequencies for f in frequencies]))


def _image_file(img_info: dict) -> str:
    """``train2017/xxx.jpg`` from LVIS v1's ``coco_url``, else the ``file_name``."""
    url: Optional[str] = img_info.get('coco_url')
    if url:
        return urlparse(url).path.lstrip('/')
    if 'file_name' in img_info:
        return img_info['file_name']
    raise KeyError(f"image {img_info.get('id')} has neither 'coco_url' nor 'file_name'")


# stock mmdet configs (default_scope='mmdet') can name it too
alias_into_openmmlab(OVLVISDataset, 'DATASETS', packages=('mmdet',))
