"""MMEngine registries of the ``vitamin_dense`` scope.

Each registry is a child of MMEngine's root registry of the same kind, so
configs with ``default_scope='vitamin_dense'`` find our modules first and fall
back to MMEngine's; components of other OpenMMLab packages are reached with
their scope prefix (``type='mmdet.HungarianAssigner'``).

:func:`register_openmmlab_alias` additionally makes a module reachable from
mmdet's or mmseg's own registry (the one it belongs to), so that a stock
MMDetection or MMSegmentation config can name it without a scope prefix; a
name that already means something else there is an error, never skipped.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Optional, Tuple, Type

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

SCOPE = 'vitamin_dense'

MODELS = Registry('model', parent=MMENGINE_MODELS, scope=SCOPE,
                  locations=['vitamin_dense.backbones', 'vitamin_dense.text.classifier',
                             'vitamin_dense.heads', 'vitamin_dense.models'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope=SCOPE,
                    locations=['vitamin_dense.datasets.openmmlab'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, scope=SCOPE,
                         locations=['vitamin_dense.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE,
                      locations=['vitamin_dense.datasets.openmmlab'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope=SCOPE,
                   locations=['vitamin_dense.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, scope=SCOPE,
                     locations=['vitamin_dense.evaluation'])
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS, scope=SCOPE,
                      locations=['vitamin_dense.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope=SCOPE,
                 locations=['vitamin_dense.engine', 'vitamin_dense.visualization.hook'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope=SCOPE,
                 locations=['vitamin_dense.engine'])
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, scope=SCOPE,
                   locations=['vitamin_dense.engine'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope=SCOPE,
                      locations=['vitamin_dense.engine'])
OPTIM_WRAPPERS = Registry('optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope=SCOPE,
                          locations=['vitamin_dense.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope=SCOPE, locations=['vitamin_dense.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS,
                            scope=SCOPE, locations=['vitamin_dense.engine'])
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope=SCOPE,
                       locations=['vitamin_dense.visualization'])
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope=SCOPE,
                       locations=['vitamin_dense.visualization'])
# Children of the other MMEngine root registries, empty: with 'vitamin_dense' as
# the default scope MMEngine looks for a child of every registry it builds from
# (log processor, model wrapper, ...) and warns "Failed to search registry with
# scope" when there is none.
RUNNER_CONSTRUCTORS = Registry('runner constructor', parent=MMENGINE_RUNNER_CONSTRUCTORS,
                               scope=SCOPE)
STRATEGIES = Registry('strategy', parent=MMENGINE_STRATEGIES, scope=SCOPE)
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope=SCOPE)
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS,
                               scope=SCOPE)
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS, scope=SCOPE)
INFERENCERS = Registry('inferencer', parent=MMENGINE_INFERENCERS, scope=SCOPE)
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, scope=SCOPE)

# The OpenMMLab packages whose stock configs may name our modules without a
# scope prefix. Each class is aliased only into the package(s) it belongs to:
# detectors, detection heads and necks into mmdet, segmentors into mmseg, the
# backbone (and what both kinds of config use) into both.
OPENMMLAB_PACKAGES: Tuple[str, ...] = ('mmdet', 'mmseg')


class RegistryClashError(KeyError):
    """A name we alias into an OpenMMLab registry already means another module there."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _openmmlab_registry(package: str, attr: str):
    """Return ``package.registry.<attr>`` if the package imports cleanly, else None."""
    if importlib.util.find_spec(package) is None:
        return None
    try:
        module = importlib.import_module(f'{package}.registry')
    except Exception:  # mmcv missing or of the wrong version: the alias is optional
        return None
    return getattr(module, attr, None)


def _lookup(registry: Registry, name: str):
    """What ``name`` means in ``registry`` (its own modules first, then its parents')."""
    node = registry
    while node is not None:
        if name in node.module_dict:
            return node.module_dict[name]
        node = node.parent
    return None


def alias_into(cls: Type, package: str, registry: str = 'MODELS',
               name: Optional[str] = None) -> bool:
    """Register ``cls`` in ``<package>.registry.<registry>`` as ``name`` (default: class name).

    The package's own modules are imported first (its registry's lazy
    ``locations``), so that a name it defines is seen. If ``name`` already
    means another module there, or in the registries it falls back to
    (MMEngine's root, where mmcv registers its layers), a stock config would
    silently get one or the other: :class:`RegistryClashError` is raised.
    Registering the same class again (re-import) is a no-op. Returns False
    when the package is not installed or does not import (it is optional).
    """
    if package not in OPENMMLAB_PACKAGES:
        raise ValueError(f'unknown OpenMMLab package {package!r}; '
                         f'choose from {list(OPENMMLAB_PACKAGES)}')
    target = _openmmlab_registry(package, registry)
    if target is None:
        return False
    key = name or cls.__name__
    target.import_from_location()
    existing = _lookup(target, key)
    if existing is cls:
        return True
    if existing is not None:
        where = f'{existing.__module__}.{existing.__qualname__}'
        raise RegistryClashError(
            f"cannot alias {cls.__module__}.{cls.__qualname__} into {package}'s {registry} as "
            f"'{key}': that name already means {where} there; rename one of them")
    target.register_module(name=key, module=cls)
    return True


def register_openmmlab_alias(*packages: str, registry: str = 'MODELS',
                             name: Optional[str] = None) -> Callable[[Type], Type]:
    """Class decorator: also register the class in the named packages' registries.

    The class must already be (or be about to be) registered in our own
    registry; the alias adds the same class under the same name in the
    package's scope, so that a stock config with ``default_scope='mmdet'``
    (or ``'mmseg'``) names it without the ``vitamin_dense.`` prefix.
    Packages are named explicitly (``@register_openmmlab_alias('mmdet')``):
    each class goes where it belongs. Packages that are not installed, or
    fail to import, are skipped: the core toolkit does not need them. A name
    clash raises :class:`RegistryClashError`.
    """
    if not packages:
        raise ValueError('register_openmmlab_alias needs the package(s) the class belongs to, '
                         f'among {list(OPENMMLAB_PACKAGES)}')

    def decorator(cls: Type) -> Type:
        for package in packages:
            alias_into(cls, package, registry, name)
        return cls

    return decorator


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every sub-package so that all modules are registered.

    Args:
        init_default_scope: also make ``vitamin_dense`` the current default
            scope of MMEngine (what ``default_scope`` in a config does), even
            when another scope (``mmdet`` after an mmdet tool, say) is
            current, as mmdet's and mmseg's ``register_all_modules`` do.
    """
    package = importlib.import_module('vitamin_dense')
    package._register_everything()  # a no-op unless the import was deferred (see the package doc)
    if init_default_scope:
        from mmengine.registry import init_default_scope as _init_default_scope
        _init_default_scope(SCOPE)


def build_model(cfg: Any) -> Any:
    """Build a model config of ours whatever MMEngine's current default scope is.

    MMEngine resolves an unprefixed ``type`` in the *current* default scope;
    after an mmdet tool or config (``default_scope='mmdet'``) that scope's
    registry cannot see our classes (``OwlDetector``, ``TextClassifier``,
    ...). The API builders (demos, exports, converters) therefore build in
    our scope for the duration of the call and leave the caller's scope as
    it was.
    """
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(SCOPE):
        return MODELS.build(cfg)
