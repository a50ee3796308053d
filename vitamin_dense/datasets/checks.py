"""Up-front checks of a data set's files: one clear line naming what is missing.

The data set classes call :func:`require_paths` before the mmdet / mmseg
constructors run, so a wrong ``data_root`` reads as
``ADE20K-150: missing data/ade/ADEChallengeData2016/images/validation (expected
layout: ...)`` rather than a deep traceback from a JSON or image loader.
"""
from __future__ import annotations

import os.path as osp
from typing import Iterable, Optional

from .errors import DatasetFileError


def join_root(data_root: Optional[str], path: str) -> str:
    """``path`` under ``data_root`` unless it is absolute or there is no root."""
    if not path or osp.isabs(path) or not data_root:
        return path
    return osp.join(data_root, path)


def require_paths(dataset: str, data_root: Optional[str], paths: Iterable[str],
                  layout: str) -> None:
    """Raise :class:`DatasetError` naming the first missing path and the layout.

    Args:
        dataset: display name of the data set (e.g. ``'ADE20K-150'``).
        data_root: the config's ``data_root`` (relative paths are joined to it).
        paths: files or folders that must exist (empty entries are skipped).
        layout: one-line description of the expected layout under ``data_root``.
    """
    for path in paths:
        if not path:
            continue
        full = join_root(data_root, path)
        if not osp.exists(full):
            hint = '' if data_root is None or osp.isdir(data_root) else \
                f' (data_root {data_root} does not exist)'
            raise DatasetFileError(f'{dataset}: missing {full}{hint}; expected layout under '
                               f'data_root: {layout}')
