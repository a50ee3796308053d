"""Register a class into mmdet's and / or mmseg's registries under a chosen name.

:func:`vitamin_dense.registry.register_openmmlab_alias` covers the common case
(MODELS, under the class name, as a decorator). This covers the others: other
registries (``OPTIM_WRAPPER_CONSTRUCTORS``, ``HOOKS``, ``DATASETS``) and other
names (``LN2d``), so that a stock config whose default scope is ``mmdet`` or
``mmseg`` finds the module without a ``vitamin_dense.`` prefix. Missing
packages are skipped; a name clash raises
:class:`~vitamin_dense.registry.RegistryClashError`.
"""
from __future__ import annotations

from typing import Optional, Sequence, Type

from ..registry import OPENMMLAB_PACKAGES, alias_into


def alias_into_openmmlab(cls: Type, registry: str = 'MODELS', name: Optional[str] = None,
                         packages: Sequence[str] = OPENMMLAB_PACKAGES) -> Type:
    """Add ``cls`` to ``<package>.registry.<registry>`` as ``name`` (default: class name)."""
    for package in packages:
        alias_into(cls, package, registry, name)
    return cls
