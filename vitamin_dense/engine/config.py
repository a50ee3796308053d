"""Loading configs and building runners with clear errors.

Used by ``tools/train.py``, ``tools/test.py`` and the tests, so that a missing
file, a syntax error, an override of a key that does not exist or of the
wrong type ends as one line naming the problem, and:

* **one setting moves a data set**: ``--cfg-options data_root=DIR`` (or
  ``coco_root=...``, any top-level ``*_root``) re-roots every dataloader and
  evaluator path that lay under the old root, and overriding one dataloader's
  ``data_root`` re-roots its evaluator too (:func:`load_config`);
* a data set's missing file is reported, with the expected layout, before
  the model is built (:func:`check_data_files`);
* a checkpoint that holds a model part's weights (backbone, text tower)
  switches off that part's pretrained download (:func:`use_checkpoint_weights`);
* ``--show-dir`` works for every config (:func:`enable_show_dir`).
"""
from __future__ import annotations

import logging
import os
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import ConfigError

logger = logging.getLogger(__name__)

DATA_SECTIONS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator',
                 'test_evaluator')
_EVALUATOR_OF = {'val_dataloader': 'val_evaluator', 'test_dataloader': 'test_evaluator'}


def load_config(path: str, cfg_options: Optional[Dict[str, Any]] = None):
    """``Config.fromfile`` plus override checking, with :class:`ConfigError` on failure."""
    from mmengine.config import Config
    from ..utils.packaged import resolve_config
    path = resolve_config(path)  # a file, or a packaged config's name
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as exc:
        raise ConfigError(f'syntax error in {exc.filename or path} line {exc.lineno}: '
                          f'{exc.msg}') from exc
    except Exception as exc:  # mmengine wraps base-config problems in various types
        text = ' '.join(str(exc).split())[:300]
        raise ConfigError(f'cannot load config {path}: {text}') from exc
    if cfg_options:
        _check_override_paths(cfg, cfg_options)
        _check_override_types(cfg, cfg_options)
        moves = _data_root_moves(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
        for sections, old, new in moves:
            _rebase_paths(cfg, sections, old, new, skip=set(cfg_options))
    return cfg


def _lookup(cfg, dotted: str):
    node: Any = cfg
    for part in dotted.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif hasattr(node, 'keys') and part in node:
            node = node[part]
        else:
            return None
    return node


def _check_override_types(cfg, options: Dict[str, Any]) -> None:
    """Reject ``--cfg-options k=v`` that puts text where the config has a number or a flag.

    MMEngine keeps a value it cannot parse as text (``lr=abc`` -> ``'abc'``),
    which would fail much later, deep inside the optimizer, with a traceback.
    """
    for dotted, value in options.items():
        if not isinstance(value, str):
            continue
        old = _lookup(cfg, dotted)
        if isinstance(old, bool):
            raise ConfigError(f"--cfg-options {dotted}={value}: the config has a flag there "
                              f'({old}); use True or False')
        if isinstance(old, (int, float)):
            kind = 'an integer' if isinstance(old, int) else 'a number'
            raise ConfigError(f"--cfg-options {dotted}={value}: the config has {kind} there "
                              f"({old}); '{value}' is not one")


def _data_root_moves(cfg, options: Dict[str, Any]) -> List[Tuple[Tuple[str, ...], str, str]]:
    """``(sections, old root, new root)`` for each overridden data root.

    A top-level ``*_root`` (``data_root``, ``coco_root``) moves every
    dataloader and evaluator; ``<split>_dataloader...data_root`` moves that
    dataloader and the split's evaluator (whose ``ann_file`` lives there too).
    """
    moves = []
    for dotted, value in options.items():
        parts = dotted.split('.')
        if not isinstance(value, str) or not parts[-1].endswith('root'):
            continue
        old = _lookup(cfg, dotted)
        if not isinstance(old, str) or not old or old == value:
            continue
        if len(parts) == 1:
            sections: Tuple[str, ...] = DATA_SECTIONS
        elif parts[0] in DATA_SECTIONS:
            sections = (parts[0],) + ((_EVALUATOR_OF[parts[0]],) if parts[0] in _EVALUATOR_OF
                                      else ())
        else:
            continue
        moves.append((sections, old, value))
    return moves


def _rebase_paths(cfg, sections: Sequence[str], old: str, new: str, skip: set) -> None:
    """Strings under ``sections`` equal to ``old``, or paths under it, move to ``new``."""
    base = old.rstrip('/')

    def move(value: str) -> str:
        if value.rstrip('/') == base:
            return new
        if value.startswith(base + '/'):
            return osp.join(new, value[len(base) + 1:])
        return value

    def walk(node, path: str):
        items = node.items() if hasattr(node, 'items') else \
            enumerate(node) if isinstance(node, list) else ()
        for key, value in list(items):
            dotted = f'{path}.{key}'
            if isinstance(value, str):
                if dotted not in skip and move(value) != value:
                    node[key] = move(value)
            elif hasattr(value, 'items') or isinstance(value, list):
                walk(value, dotted)

    for section in sections:
        if section in cfg and (hasattr(cfg[section], 'items') or isinstance(cfg[section], list)):
            walk(cfg[section], section)


def _check_override_paths(cfg, options: Dict[str, Any]) -> None:
    """Reject ``--cfg-options a.b.c=v`` whose parent ``a.b`` does not exist.

    A new leaf key is allowed (that is how options are added), but a typo in
    the path to it would otherwise silently create a dead branch.
    """
    for dotted in options:
        parts = dotted.split('.')
        node: Any = cfg
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not hasattr(node, 'keys') or part not in node:
                prefix = '.'.join(parts[:depth + 1])
                raise ConfigError(f"--cfg-options {dotted}: the config has no '{prefix}'")
            node = node[part]


def enable_amp(cfg) -> None:
    """Switch the optimizer wrapper to mixed precision (GPU only, as MMEngine's)."""
    import torch
    if not torch.cuda.is_available():
        raise ConfigError('--amp needs a CUDA GPU (MMEngine has no CPU mixed precision); '
                          'drop --amp to train in float32')
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        return
    if wrapper != 'OptimWrapper':
        raise ConfigError(f'--amp works with OptimWrapper, not {wrapper}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def enable_show_dir(cfg, show_dir: str, score_thr: Optional[float] = None) -> str:
    """Make the config's visualization hook draw test predictions into ``show_dir``.

    MMDetection's layout: a relative ``show_dir`` lies in
    ``work_dir/<timestamp>/``. Our :class:`DenseVisualizationHook` and mmdet's
    ``DetVisualizationHook`` are switched on as they are; a config without a
    hook, or with one that cannot write test pictures (mmseg's
    ``SegVisualizationHook``), gets ours. ``score_thr`` replaces the hook's
    score cut. Returns the hook type used.
    """
    cfg.setdefault('default_hooks', {})
    hooks = cfg.default_hooks
    hook = hooks.get('visualization') or {}
    kind = str(hook.get('type', '')).split('.')[-1]
    visualizer = str((cfg.get('visualizer') or {}).get('type', ''))
    if kind == 'DetVisualizationHook' and not visualizer.endswith('DetLocalVisualizer'):
        kind = ''  # mmdet's hook draws through mmdet's visualizer only
    if kind not in ('DenseVisualizationHook', 'DetVisualizationHook'):
        interval = hook.get('interval', 50)
        hook = dict(type='vitamin_dense.DenseVisualizationHook', interval=interval)
        kind = 'DenseVisualizationHook'
    hook['draw'] = True
    hook['test_out_dir'] = show_dir
    if score_thr is not None:
        if not 0 <= score_thr <= 1:
            raise ConfigError(f'--score-thr {score_thr} is not a score in [0, 1]')
        hook['score_thr'] = float(score_thr)
    hooks['visualization'] = hook
    return kind


# ------------------------------------------------------------------ data files
def _dataset_cfgs(node, path: str) -> Iterator[Tuple[str, dict]]:
    """The data set configs of a dataloader's ``dataset`` (through wrappers)."""
    if hasattr(node, 'items'):
        if 'type' in node and ('data_root' in node or 'ann_file' in node or
                               'data_prefix' in node):
            yield path, node
        for key in ('dataset', 'datasets'):
            if key in node:
                yield from _dataset_cfgs(node[key], f'{path}.{key}')
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _dataset_cfgs(item, f'{path}.{i}')


def _layout_of(dataset_type: str) -> str:
    """The expected file layout a data set class documents (``LAYOUT``)."""
    import sys
    from ..registry import DATASETS
    try:
        cls = DATASETS.get(dataset_type)
    except Exception:  # an unknown type fails later with the registry's own message
        cls = None
    if cls is not None:
        if getattr(cls, 'LAYOUT', ''):
            return cls.LAYOUT
        module = sys.modules.get(cls.__module__)
        for name in dir(module):
            if name.endswith('_LAYOUT') and isinstance(getattr(module, name), str):
                return getattr(module, name)
    return 'see the header of its configs/_base_/datasets/*.py'


def _generates_data(dataset_type: str, dataset: dict) -> bool:
    from ..registry import DATASETS
    try:
        cls = DATASETS.get(dataset_type)
    except Exception:
        return False
    return bool(getattr(cls, 'GENERATES_DATA', False)) and dataset.get('generate', True)


def check_data_files(cfg, splits: Sequence[str]) -> None:
    """Raise :class:`DatasetFileError` for the first missing data file, naming the layout.

    Checks the ``data_root``, ``ann_file`` and ``data_prefix`` folders of the
    dataloaders of ``splits`` (``'train'``, ``'val'``, ``'test'``) and their
    evaluators' ``ann_file``, before the model is built (data sets themselves
    are built only when their loop starts). Data generated on first use (the
    synthetic sets) is skipped.
    """
    from ..datasets.errors import DatasetFileError
    from ..registry import register_all_modules
    register_all_modules(init_default_scope=False)
    for split in splits:
        section = f'{split}_dataloader'
        loader = cfg.get(section)
        if not loader:
            continue
        generated_roots = []
        layout = None
        for path, dataset in _dataset_cfgs(loader.get('dataset'), f'{section}.dataset'):
            kind = str(dataset.get('type', '?'))
            root = dataset.get('data_root') or ''
            if _generates_data(kind, dataset):
                generated_roots.append(root.rstrip('/'))
                continue
            layout = _layout_of(kind)
            wanted = [('data_root', root)] if root else []
            if isinstance(dataset.get('ann_file'), str) and dataset['ann_file']:
                wanted.append(('ann_file', osp.join(root, dataset['ann_file'])))
            for key, value in (dataset.get('data_prefix') or {}).items():
                if isinstance(value, str) and value:
                    wanted.append((f'data_prefix.{key}', osp.join(root, value)))
            for key, value in wanted:
                if '://' not in value and not osp.exists(value):
                    raise DatasetFileError(
                        f'{path} ({kind}): {key} {value} does not exist; expected layout under '
                        f"data_root ({root or 'unset'}): {layout} (move the whole data set "
                        'with --cfg-options data_root=DIR)')
        evaluators = cfg.get(_EVALUATOR_OF.get(section, ''), None)
        for i, metric in enumerate(evaluators if isinstance(evaluators, list) else
                                   [evaluators] if evaluators else []):
            ann = metric.get('ann_file') if hasattr(metric, 'get') else None
            if not isinstance(ann, str) or not ann or '://' in ann or osp.exists(ann):
                continue
            if any(root and ann.startswith(root + '/') for root in generated_roots):
                continue  # written by the data set when it is generated
            raise DatasetFileError(
                f'{_EVALUATOR_OF[section]} ({metric.get("type", "?")}): ann_file {ann} does not '
                f'exist; expected layout: {layout or "see the header of the data set config"} '
                '(move the whole data set with --cfg-options data_root=DIR)')


# -------------------------------------------------------------- weights
def _checkpoint_keys(path: str) -> Optional[List[str]]:
    """The parameter names a checkpoint holds (memory-mapped, weights-only), or None."""
    import torch
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception:  # legacy format, foreign file: the runner's loader reports it
        return None
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    return [k for k in state if isinstance(k, str)] if isinstance(state, dict) else None


def use_checkpoint_weights(cfg, checkpoint: str) -> List[str]:
    """Switch off the pretrained download of every model part the checkpoint holds.

    A checkpoint written by our runner holds every weight (frozen backbone and
    text tower included): building the model with ``weights='datacomp1b'``
    only to overwrite them would need the hub. Each ``model.<part>`` dict
    (``backbone``, ``text_encoder``, ...) whose parameters the checkpoint holds
    gets ``weights=None`` (and loses a ``Pretrained`` ``init_cfg``). Returns
    the config keys changed.
    """
    model = cfg.get('model')
    keys = _checkpoint_keys(checkpoint) if model is not None else None
    if not keys:
        return []
    prefixes = {k.split('.', 1)[0] for k in keys if '.' in k}
    prefixes |= {k.split('.', 2)[1] for k in keys if k.startswith('module.') and k.count('.') > 1}
    changed = []
    for part, node in list(model.items()):
        if part not in prefixes or not hasattr(node, 'items'):
            continue
        if node.get('weights') is not None or (part == 'text_encoder' and 'weights' not in node):
            node['weights'] = None
            changed.append(f'model.{part}.weights')
        init = node.get('init_cfg')
        if hasattr(init, 'get') and str(init.get('type', '')).endswith('Pretrained'):
            node['init_cfg'] = None
            changed.append(f'model.{part}.init_cfg')
    if changed:
        logger.info('%s: taken from the checkpoint %s (nothing downloaded)', ', '.join(changed),
                    checkpoint)
    return changed


def build_runner(cfg):
    """Build the config's runner (our :class:`VitaminRunner` unless it names another).

    The config's default scope is made current first: another OpenMMLab tool
    used earlier in the process (an mmdet inferencer, say) may have left its
    own scope current, where our runner is not registered.
    """
    from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
    from mmengine.registry import init_default_scope

    from ..registry import RUNNERS, register_all_modules
    register_all_modules(init_default_scope=False)
    cfg.setdefault('default_scope', 'vitamin_dense')
    init_default_scope(cfg.default_scope)
    runner_type = cfg.get('runner_type', 'VitaminRunner')
    if runner_type in RUNNERS.module_dict:
        # A scoped name resolves whatever the config's default scope is.
        cfg.runner_type = f'vitamin_dense.{runner_type}'
        return RUNNERS.build(cfg)
    cfg.runner_type = runner_type
    return MMENGINE_RUNNERS.build(cfg)
