"""MMEngine registries of the ``vitamin_dense`` scope.

Each registry is a child of MMEngine's root registry of the same kind, so
configs with ``default_scope='vitamin_dense'`` find our modules first and fall
back to MMEngine's; components of other OpenMMLab packages are reached with
their scope prefix (``type='mmdet.HungarianAssigner'``).

:func:`register_openmmlab_alias` additionally makes a module reachable from
mmdet's and mmseg's own registries, so that a stock MMDetection or
MMSegmentation config can name it without a scope prefix.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Callable, List, Tuple, Type

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

# (package, registry attribute) pairs that stock configs build from.
_OPENMMLAB_TARGETS: Tuple[Tuple[str, str], ...] = (('mmdet', 'MODELS'), ('mmseg', 'MODELS'))
_PENDING_ALIASES: List[Tuple[Type, Tuple[str, ...]]] = []


def _openmmlab_registry(package: str, attr: str):
    """Return ``package.registry.<attr>`` if the package imports cleanly, else None."""
    if importlib.util.find_spec(package) is None:
        return None
    try:
        module = importlib.import_module(f'{package}.registry')
    except Exception:  # mmcv missing or of the wrong version: the alias is optional
        return None
    return getattr(module, attr, None)


def register_openmmlab_alias(*packages: str) -> Callable[[Type], Type]:
    """Class decorator: also register the class in mmdet's / mmseg's MODELS.

    The class must already be (or be about to be) registered in our own
    registry; the alias only adds a second name in the other scopes. Packages
    that are not installed, or fail to import, are skipped silently: the core
    toolkit does not need them.
    """
    targets = packages or tuple(p for p, _ in _OPENMMLAB_TARGETS)

    def decorator(cls: Type) -> Type:
        _PENDING_ALIASES.append((cls, tuple(targets)))
        _apply_alias(cls, targets)
        return cls

    return decorator


def _apply_alias(cls: Type, packages: Tuple[str, ...]) -> None:
    for package, attr in _OPENMMLAB_TARGETS:
        if package not in packages:
            continue
        registry = _openmmlab_registry(package, attr)
        if registry is not None and cls.__name__ not in registry.module_dict:
            registry.register_module(module=cls)


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every sub-package so that all modules are registered.

    Args:
        init_default_scope: also make ``vitamin_dense`` the current default
            scope of MMEngine (what ``default_scope`` in a config does).
    """
    package = importlib.import_module('vitamin_dense')
    package._register_everything()  # a no-op unless the import was deferred (see the package doc)
    if init_default_scope:
        from mmengine.registry import DefaultScope
        if DefaultScope.get_current_instance() is None or \
                not DefaultScope.check_instance_created(SCOPE):
            DefaultScope.get_instance(SCOPE, scope_name=SCOPE)
