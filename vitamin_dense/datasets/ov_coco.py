"""OV-COCO: COCO detection with 48 base / 17 novel classes (OVR-CNN, ViLD, F-VLM, F-ViT).

:class:`OVCocoDataset` is mmdet's :class:`~mmdet.datasets.CocoDataset` with
three changes:

* its classes are the 65 OV-COCO classes (labels 0..64 in COCO order), and
  categories are matched to classes by *name*, so the stock
  ``instances_{train,val}2017.json`` files and OVR-CNN's pre-filtered
  ``instances_train2017_seen_2.json`` (48 categories) /
  ``instances_val2017_all_2.json`` (65 categories) give the same labels;
* ``class_subset='base'`` keeps only base-class annotations (training),
  ``'all'`` keeps all 65 (evaluation), ``'novel'`` only the 17 novel ones;
* images with no annotation of the kept classes are dropped, in training and
  testing alike, exactly as OVR-CNN built its ``*_seen_2`` / ``*_all_2``
  files (``keep_empty_images=True`` keeps them).

Its metainfo carries ``classes``, ``synonyms``, ``palette``, ``is_novel``,
``base_classes``, ``novel_classes``, ``base_labels``, ``novel_labels`` and
``class_subset``; :class:`~vitamin_dense.evaluation.OVCocoMetric` reads the
split from it.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from mmdet.datasets import CocoDataset
from mmengine.fileio import get_local_path

from ..registry import DATASETS
from ..text.vocabulary import normalize_name
from ..utils.openmmlab_alias import alias_into_openmmlab
from .ov_detection_base import (DatasetError, IdList, OpenVocabFilterMixin, annotation_error,
                                check_class_subset, check_first_image, describe_missing,
                                require_file)
from .ov_splits import (OV_COCO_NOVEL_CLASSES, coco_classes, coco_palette, labels_in_subset,
                        names_to_mask, ov_coco_classes, ov_coco_palette, random_palette,
                        split_metainfo)

OV_COCO_LAYOUT = ('data/coco/annotations/instances_{train,val}2017.json with images in '
                  'data/coco/{train,val}2017/ (OVR-CNN instances_*_seen_2 / *_all_2 files '
                  'work too)')


@DATASETS.register_module()
class OVCocoDataset(OpenVocabFilterMixin, CocoDataset):
    """COCO-format detection data set with an open-vocabulary base / novel split.

    Args:
        class_subset: which classes' annotations to keep: ``'base'`` (OV
            training), ``'all'`` (evaluation) or ``'novel'``. Labels always
            index the full class list, so a detector trained on the base
            subset predicts in the same 65-way label space it is tested in.
        novel_classes: names of the novel classes; default: the 17 OV-COCO
            novel classes found among ``metainfo['classes']`` (or
            ``metainfo['novel_classes']`` when the config sets it).
        keep_empty_images: keep images without any annotation of the kept
            classes (default False: dropped, as OVR-CNN's files).
        **kwargs: everything mmdet's ``CocoDataset`` takes (``ann_file``,
            ``data_root``, ``data_prefix``, ``metainfo``, ``filter_cfg``,
            ``pipeline``, ``test_mode``, ``backend_args``, ...).
    """

    METAINFO = dict(classes=ov_coco_classes(), palette=ov_coco_palette())

    def __init__(self, *args, class_subset: str = 'all',
                 novel_classes: Optional[Sequence[str]] = None,
                 keep_empty_images: bool = False, **kwargs) -> None:
        self.class_subset = check_class_subset(class_subset)
        self._novel_arg = tuple(novel_classes) if novel_classes is not None else None
        self.keep_empty_images = keep_empty_images
        super().__init__(*args, **kwargs)
        self._apply_split_metainfo()  # also when lazy_init skipped load_data_list

    # ------------------------------------------------------------------ metainfo
    def _apply_split_metainfo(self) -> None:
        meta = self._metainfo
        classes = tuple(meta['classes'])
        if self._novel_arg is not None:
            novel = self._novel_arg
        elif meta.get('novel_classes') is not None:
            novel = tuple(meta['novel_classes'])
        else:
            novel = tuple(n for n in OV_COCO_NOVEL_CLASSES if n in set(classes))
        known = {normalize_name(c) for c in classes}
        unknown = [n for n in novel if normalize_name(n) not in known]
        if unknown:
            raise DatasetError(f'novel classes {describe_missing(unknown)} are not among the '
                               f'{len(classes)} classes of the data set')
        synonyms = meta.get('synonyms')
        if synonyms is None or len(synonyms) != len(classes):
            synonyms = tuple((c,) for c in classes)
        palette = meta.get('palette')
        if not palette or len(palette) != len(classes):
            palette = _palette_for(classes)
        meta.update(synonyms=tuple(tuple(s) for s in synonyms), palette=palette,
                    class_subset=self.class_subset,
                    **split_metainfo(classes, names_to_mask(classes, novel)))

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        self._apply_split_metainfo()
        require_file(self.ann_file, 'OV-COCO annotation file', OV_COCO_LAYOUT, self.backend_args)
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            try:
                self.coco = self.COCOAPI(local_path)
                categories = self.coco.dataset['categories']
            except (ValueError, KeyError, TypeError, AssertionError) as exc:
                raise annotation_error(self.ann_file, 'COCO instances', exc) from exc
        classes = tuple(self._metainfo['classes'])
        name_to_id = {normalize_name(c['name']): c['id'] for c in categories}
        keep = labels_in_subset(self._metainfo['is_novel'], self.class_subset)
        missing = [classes[i] for i in keep if normalize_name(classes[i]) not in name_to_id]
        if missing:
            raise DatasetError(
                f"{self.ann_file} has no category {describe_missing(missing)}, needed for "
                f"class_subset='{self.class_subset}'; use a file with all these categories "
                "(the stock instances_*2017.json has them)")
        self.cat_ids = IdList(name_to_id[normalize_name(classes[i])] for i in keep)
        self.cat2label = {cat_id: label for cat_id, label in zip(self.cat_ids, keep)}
        kept_ids = set(self.cat_ids)

        data_list, total_ann_ids = [], []
        try:
            for img_id in self.coco.get_img_ids():
                raw_img_info = self.coco.load_imgs([img_id])[0]
                raw_img_info['img_id'] = img_id
                ann_ids = self.coco.get_ann_ids(img_ids=[img_id])
                raw_ann_info = self.coco.load_anns(ann_ids)
                total_ann_ids.extend(ann_ids)
                if not self.keep_empty_images and \
                        not any(ann['category_id'] in kept_ids for ann in raw_ann_info):
                    continue
                data_list.append(self.parse_data_info(
                    dict(raw_ann_info=raw_ann_info, raw_img_info=raw_img_info)))
        except (KeyError, TypeError, ValueError) as exc:
            raise annotation_error(self.ann_file, 'COCO instances', exc) from exc
        if self.ANN_ID_UNIQUE and len(set(total_ann_ids)) != len(total_ann_ids):
            raise DatasetError(f'annotation ids in {self.ann_file} are not unique')
        del self.coco
        check_first_image(data_list, OV_COCO_LAYOUT, self.backend_args)
        return data_list


def _palette_for(classes: Sequence[str]):
    """mmdet's COCO colour for COCO class names, a fixed random colour otherwise."""
    colours = dict(zip(coco_classes(), coco_palette()))
    fallback = random_palette(len(classes))
    return [colours.get(name, fallback[i]) for i, name in enumerate(classes)]


# stock mmdet configs (default_scope='mmdet') can name it too
alias_into_openmmlab(OVCocoDataset, 'DATASETS', packages=('mmdet',))
