"""Where the configs, tools and demos are: in the checkout, or shipped inside the package.

An installed wheel carries ``configs/``, ``tools/`` and ``demo/`` as package data
in ``vitamin_dense/.mim/`` (MMDetection's layout: its setup.py copies them into
``mmdet/.mim/`` at build time, and ``mim`` runs ``.mim/tools/train.py``); a
checkout (editable install, or ``PYTHONPATH``) has them beside the package.
:func:`resource_root` answers which, so that ``vitamin-dense train
ov_seg/vitamin_tiny_synthetic`` and ``load_config('ov_seg/vitamin_tiny_synthetic')``
find the same file from any directory.

Standard library only: config names are resolved before torch or OpenMMLab
are imported (``--help`` and argument errors stay fast).
"""
from __future__ import annotations

import difflib
import os
import os.path as osp
from typing import List

from ..errors import ConfigError

PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def resource_root() -> str:
    """The folder holding ``configs/``, ``tools/`` and ``demo/``: the package's ``.mim`` or
    the checkout."""
    mim = osp.join(PACKAGE_DIR, '.mim')
    return mim if osp.isdir(mim) else osp.dirname(PACKAGE_DIR)


def config_root() -> str:
    return osp.join(resource_root(), 'configs')


def script_path(relative: str) -> str:
    """A shipped script (``tools/train.py``, ``demo/segment.py``) of this installation."""
    path = osp.join(resource_root(), relative)
    if not osp.isfile(path):
        raise ConfigError(f'{relative} is not part of this installation (looked in '
                          f'{resource_root()}); reinstall vitamin-dense')
    return path


def list_configs() -> List[str]:
    """Every packaged config as its name: path under ``configs/`` without ``.py``
    (``ov_seg/vitamin_tiny_synthetic``), base configs left out."""
    root = config_root()
    names = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ('_base_', '__pycache__'))
        rel = osp.relpath(folder, root)
        for name in sorted(files):
            if name.endswith('.py'):
                names.append(osp.normpath(osp.join(rel, name[:-3])).replace(os.sep, '/'))
    return sorted(names)


def packaged_config(name: str) -> str:
    """The path of a packaged config by its name (``ov_det/fvit_vitamin_l_ovcoco[.py]``,
    a leading ``configs/`` allowed), without looking at the current directory."""
    path = _packaged(name)
    if path is None:
        raise ConfigError(_not_found(name))
    return path


def resolve_config(name: str) -> str:
    """A config given on the command line or to the API: a file that exists is used as is;
    otherwise a packaged config by its name (``ov_seg/vitamin_tiny_synthetic``, with or
    without ``configs/`` and ``.py``; a bare name when it is unique). An unknown name is a
    :class:`ConfigError` naming the closest packaged configs."""
    if osp.isfile(name):
        return name
    path = _packaged(name)
    if path is None:
        raise ConfigError(_not_found(name))
    return path


def _key(name: str) -> str:
    key = name.replace('\\', '/').strip('/')
    if key.startswith('configs/'):
        key = key[len('configs/'):]
    return key[:-3] if key.endswith('.py') else key


def _packaged(name: str):
    key = _key(name)
    if not key or key.startswith('..') or osp.isabs(name):
        return None
    path = osp.join(config_root(), key + '.py')
    if osp.isfile(path):
        return path
    if '/' not in key:  # a bare name: unique among the packaged configs
        found = [n for n in list_configs() if n.rsplit('/', 1)[-1] == key]
        if len(found) == 1:
            return osp.join(config_root(), found[0] + '.py')
        if len(found) > 1:
            raise ConfigError(f"config name '{name}' is ambiguous: {', '.join(found)}")
    return None


def _not_found(name: str) -> str:
    names = list_configs()
    key = _key(name)
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
    by_stem = {n.rsplit('/', 1)[-1]: n for n in reversed(names)}  # a typo in the name alone
    for stem in difflib.get_close_matches(key.rsplit('/', 1)[-1], list(by_stem), n=3, cutoff=0.6):
        if by_stem[stem] not in close:
            close.append(by_stem[stem])
    hint = f'close matches: {", ".join(close[:3])}' if close else \
        f'{len(names)} packaged configs, none close'
    return (f"config file not found: '{name}' is neither a file nor a packaged config ({hint}; "
            '`vitamin-dense configs` lists them)')


__all__ = ['resource_root', 'config_root', 'script_path', 'list_configs', 'packaged_config',
           'resolve_config']
