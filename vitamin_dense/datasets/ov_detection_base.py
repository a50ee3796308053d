"""Shared pieces of the open-vocabulary detection data sets: errors and file checks.

Both :class:`~vitamin_dense.datasets.OVCocoDataset` and
:class:`~vitamin_dense.datasets.OVLVISDataset` check their files when they are
built, so a wrong ``data_root`` fails at once with a one-line message that
names the missing path and the expected layout, instead of deep inside a data
loader worker.
"""
from __future__ import annotations

import os.path as osp
from typing import List, Optional

from .errors import DatasetError, DatasetFileError  # noqa: F401  (re-exported)
from .ov_splits import CLASS_SUBSETS


def is_local(path: str, backend_args: Optional[dict]) -> bool:
    """True when ``path`` is read from the local disk (so it can be checked up front)."""
    if backend_args and backend_args.get('backend', 'local') not in ('local', 'disk'):
        return False
    return '://' not in str(path)


def require_file(path: str, what: str, layout: str, backend_args: Optional[dict] = None) -> None:
    """Raise :class:`DatasetFileError` when a local ``path`` is not a file."""
    if not path:
        raise DatasetFileError(f'no {what} given (set ann_file); expected layout: {layout}')
    if is_local(path, backend_args) and not osp.isfile(path):
        raise DatasetFileError(f'{what} not found: {path}; expected layout: {layout} '
                               '(set data_root / ann_file in the config)')


def check_class_subset(subset: str) -> str:
    if subset not in CLASS_SUBSETS:
        raise DatasetError(f"class_subset must be one of {', '.join(CLASS_SUBSETS)}, "
                           f"got '{subset}'")
    return subset


def check_first_image(data_list: List[dict], layout: str,
                      backend_args: Optional[dict] = None) -> None:
    """Fail early when the image folder does not match the annotation file.

    Only the first image is checked (stat-ing 100k files would be slow); a
    missing folder or a wrong ``data_prefix`` shows up there.
    """
    if not data_list:
        return
    path = data_list[0]['img_path']
    if not is_local(path, backend_args) or osp.isfile(path):
        return
    folder = osp.dirname(path) or '.'
    where = 'its folder exists' if osp.isdir(folder) else f'folder {folder} does not exist'
    raise DatasetFileError(f'image not found: {path} ({where}); expected layout: {layout} '
                           '(set data_root / data_prefix in the config)')


def describe_missing(names: List[str], limit: int = 5) -> str:
    shown = ', '.join(repr(n) for n in names[:limit])
    return shown + (f' and {len(names) - limit} more' if len(names) > limit else '')


def annotation_error(path: str, kind: str, exc: BaseException) -> DatasetError:
    """The error for an annotation file that exists but cannot be parsed."""
    reason = f'{type(exc).__name__}: {exc}'.splitlines()[0]
    return DatasetError(f'{path} is not a valid {kind} annotation file ({reason})')


class IdList(list):
    """A list of category ids with O(1) membership tests.

    mmdet's ``parse_data_info`` tests ``category_id in self.cat_ids`` for
    every annotation; with LVIS' 1203 ids and 1.27M training annotations a
    plain list makes that quadratic.
    """

    def __init__(self, ids=()):
        super().__init__(ids)
        self._members = frozenset(self)

    def __contains__(self, item) -> bool:
        return item in self._members


class OpenVocabFilterMixin:
    """``filter_cfg`` handling shared by the open-vocabulary detection data sets.

    ``filter_empty_gt`` drops training images left without a usable (non-crowd)
    box after the base / novel filtering; ``min_size`` drops small images.
    Test-mode data sets are never filtered (mmdet's convention).
    """

    def filter_data(self) -> List[dict]:
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0)
        kept = []
        for info in self.data_list:
            if filter_empty and not any(not inst.get('ignore_flag', 0)
                                        for inst in info['instances']):
                continue
            if min(info['width'], info['height']) < min_size:
                continue
            kept.append(info)
        return kept


__all__ = ['DatasetError', 'DatasetFileError', 'require_file', 'check_class_subset',
           'check_first_image', 'describe_missing', 'annotation_error', 'is_local',
           'OpenVocabFilterMixin', 'IdList']
