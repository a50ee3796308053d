"""Register a class into mmdet's and mmseg's registries under a chosen name.

:func:`vitamin_dense.registry.register_openmmlab_alias` covers the common case
(MODELS, under the class name). This covers the others: other registries
(``OPTIM_WRAPPER_CONSTRUCTORS``, ``HOOKS``) and other names (``LN2d``), so
that a stock config whose default scope is ``mmdet`` or ``mmseg`` finds the
module without a ``vitamin_dense.`` prefix. Missing packages are skipped.
"""
from __future__ import annotations

from typing import Optional, Sequence, Type

from ..registry import _openmmlab_registry


def alias_into_openmmlab(cls: Type, registry: str = 'MODELS', name: Optional[str] = None,
                         packages: Sequence[str] = ('mmdet', 'mmseg')) -> Type:
    """Add ``cls`` to ``<package>.registry.<registry>`` as ``name`` (default: class name)."""
    key = name or cls.__name__
    for package in packages:
        target = _openmmlab_registry(package, registry)
        if target is not None and key not in target.module_dict:
            target.register_module(name=key, module=cls)
    return cls
