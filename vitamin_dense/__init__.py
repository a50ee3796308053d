"""vitamin-dense: open-vocabulary dense prediction on the ViTamin image tower.

Importing the package registers every module in the ``vitamin_dense`` MMEngine
scope (what ``custom_imports=dict(imports=['vitamin_dense'])`` relies on). The
inference parts need only torch, open_clip, timm and mmengine; data sets and
metrics, which build on mmdet / mmseg, are registered when those are installed.
"""
import logging as _logging

from .version import __version__
from . import registry  # noqa: F401
from . import backbones, engine, heads, models, text, apis, visualization  # noqa: F401
from .utils.imports import openmmlab_available

if openmmlab_available():
    from . import datasets, evaluation  # noqa: F401
else:  # pragma: no cover - exercised by the core-only import test
    _logging.getLogger(__name__).debug('mmdet/mmseg not available: data sets and metrics '
                                       'are not registered')

__all__ = ['__version__', 'openmmlab_available']
