"""vitamin-dense: open-vocabulary dense prediction on the ViTamin image tower.

Importing the package registers every module in the ``vitamin_dense`` MMEngine
scope (what ``custom_imports=dict(imports=['vitamin_dense'])`` relies on). The
inference parts need only torch, open_clip, timm and mmengine; data sets and
metrics, which build on mmdet / mmseg, are registered when those are installed.

Command-line entry points that must answer ``--help`` and argument errors at
once (``demo/*.py``, ``tools/*.py``) set ``VITAMIN_DENSE_LAZY_IMPORT=1`` before
their first import of the package: it then registers nothing until
:func:`vitamin_dense.registry.register_all_modules` is called. The variable is
removed from the environment when read, so child processes import as usual.
The ``vitamin-dense`` console script and ``python -m vitamin_dense`` defer the
same way (:mod:`vitamin_dense.commands`; their scripts load the toolkit).
"""
import logging as _logging
import os as _os

from .version import __version__
from .utils.imports import openmmlab_available


def _started_as_command() -> bool:
    """Whether this process is the ``vitamin-dense`` command (console script or ``-m``)."""
    import sys
    argv = getattr(sys, 'argv', None) or ['']
    if _os.path.basename(argv[0]) in ('vitamin-dense', 'vitamin-dense.exe',
                                      'vitamin-dense-script.py'):
        return True
    orig = list(getattr(sys, 'orig_argv', ()))  # the interpreter's own -m comes first
    first = next((i for i, a in enumerate(orig) if a.startswith('-m')), None)
    return first is not None and (orig[first] == '-mvitamin_dense' or
                                  orig[first:first + 2] == ['-m', 'vitamin_dense'])


_DEFERRED = (_os.environ.pop('VITAMIN_DENSE_LAZY_IMPORT', '') == '1') or _started_as_command()


def _register_everything() -> None:
    """Import every sub-package (registering its modules); cheap when already done."""
    from . import registry  # noqa: F401
    from . import backbones, engine, heads, models, text, apis, visualization  # noqa: F401
    from .text import classifier  # noqa: F401  (TextClassifier; the text package loads it lazily)
    from .visualization import hook  # noqa: F401  (DenseVisualizationHook, needs mmengine's Hook)
    if openmmlab_available():
        from . import datasets, evaluation  # noqa: F401
        from .datasets import openmmlab  # noqa: F401  (the mmdet / mmseg data sets)
    else:  # pragma: no cover - exercised by the core-only import test
        _logging.getLogger(__name__).debug('mmdet/mmseg not available: data sets and metrics '
                                           'are not registered')


if not _DEFERRED:
    _register_everything()

__all__ = ['__version__', 'openmmlab_available']
