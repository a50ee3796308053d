"""Convert the released Sliding F-ViT checkpoints (MMDetection 2.x) into ours.

    python tools/convert_checkpoint.py fvit fvit_vitamin_l_ovcoco.pth fvit_l_ovcoco.pth
    python tools/convert_checkpoint.py fvit fvit_vitamin_l_ovlvis.pth fvit_l_ovlvis.pth \\
        --config configs/ov_det/fvit_vitamin_l_ovlvis.py
    python tools/convert_checkpoint.py fvit coco_with_background_X.pt coco_X.safetensors

The released files (Beckschen/ViTamin ``vitamin_fvit``) are MMDetection 2.x
checkpoints of the reference ``FViT`` detector. They are read without full
unpickling (:mod:`vitamin_dense.engine.foreign_checkpoint`). Parameter names map
as follows (the committed manifest ``tests/data/fvit_reference/`` proves it):

* ``backbone.visual.*`` (the frozen ViTamin) -> ``backbone.visual.*``;
* ``backbone.interpolate1.{0,1,3}.*`` (conv - BN - GELU - conv) ->
  ``adapter.levels.0.{0,1,3}.*``; ``backbone.interpolate2.0.*`` (conv) ->
  ``adapter.levels.1.*`` (levels 2 and 3 have no weights);
* ``neck.*``, ``rpn_head.*``, ``roi_head.mask_head.*`` and the box head's
  convs and FCs keep their names;
* ``roi_head.bbox_head.detect_temperature`` -> ``roi_head.bbox_head.logit_scale``;
* ``roi_head.bbox_head.all_embeddings`` (``E x (K + 1)``): the class columns
  become the text encoder's table, the last (background) column
  ``roi_head.bbox_head.background_embedding``;
* ``roi_head.bbox_head.fc_cls.*`` (built by mmdet but unused by the
  reference's forward) is dropped.

The text tower is not in the released files: it comes from the config's
CLIP weights (``model.backbone.weights``, ``datacomp1b``), so the result holds
every key of our detector and loads strictly. The class embeddings the
released model was trained and evaluated with become the text encoder's
fixed table (:class:`~.text.FViTTextEncoder`), so evaluation uses exactly
them; other vocabularies are encoded with the published recipe.

A reference class-embedding file (``datasets/embeddings/*.pt``: a dict of
``name -> vector``) converts to a table file for
``model.text_encoder.class_embeddings``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...engine.foreign_checkpoint import foreign_state_dict, read_foreign_checkpoint
from ...errors import ConfigError, WeightsError
from ...text.vocabulary import normalize_name
from .text import save_class_embeddings

logger = logging.getLogger(__name__)

CONFIGS = {  # packaged config names (vitamin_dense.utils.packaged)
    'ovcoco': 'ov_det/fvit_vitamin_l_ovcoco',
    'ovlvis': 'ov_det/fvit_vitamin_l_ovlvis',
}
EMBEDDINGS = 'roi_head.bbox_head.all_embeddings'
# (reference prefix, our prefix); None drops the entry. First match wins.
KEY_MAP: Tuple[Tuple[str, Optional[str]], ...] = (
    ('backbone.visual.', 'backbone.visual.'),
    ('backbone.interpolate1.', 'adapter.levels.0.'),
    ('backbone.interpolate2.0.', 'adapter.levels.1.'),
    ('roi_head.bbox_head.detect_temperature', 'roi_head.bbox_head.logit_scale'),
    ('roi_head.bbox_head.fc_cls.', None),
    ('neck.', 'neck.'),
    ('rpn_head.', 'rpn_head.'),
    ('roi_head.bbox_head.', 'roi_head.bbox_head.'),
    ('roi_head.mask_head.', 'roi_head.mask_head.'),
)
# mmdet corrects a typo of the LVIS v1 category names; the released embeddings (and the LVIS
# annotation files our OV-LVIS data set reads its names from) keep the original.
LVIS_V1_SPELLING = {'speaker_(stereo_equipment)': 'speaker_(stero_equipment)'}
# Keys of our detector that the released files do not hold (filled from the built model).
OWN_ONLY = ('text_encoder.', '_extra_state')


def map_key(name: str) -> Optional[str]:
    """Our name of a reference parameter (None: dropped). Unknown names raise WeightsError."""
    for ref, ours in KEY_MAP:
        if name == ref or (ref.endswith('.') and name.startswith(ref)):
            return None if ours is None else ours + name[len(ref):]
    raise WeightsError(f"'{name}' is not a parameter of the released Sliding F-ViT; is this an "
                       'F-ViT checkpoint (Beckschen/ViTamin vitamin_fvit)?')


def convert_state_dict(state: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], Optional[Tensor]]:
    """Rename a reference state dict; returns ``(ours, all_embeddings or None)``.

    ``all_embeddings`` (``(E, K + 1)``, background last) is returned apart:
    see :func:`split_embeddings`.
    """
    out: Dict[str, Tensor] = {}
    embeddings = None
    for name, value in state.items():
        if name == EMBEDDINGS:
            embeddings = value
            continue
        if name == 'roi_head.bbox_head.bg_embedding':  # learn_bg=True (not the released ones)
            out['roi_head.bbox_head.background_embedding'] = value.reshape(-1)
            continue
        new = map_key(name)
        if new is not None:
            out[new] = value
    return out, embeddings


def split_embeddings(embeddings: Tensor, names: Sequence[str]) -> Tuple[Tensor, Tensor]:
    """``(K, E)`` class embeddings and the ``(E,)`` background of an ``(E, K + 1)`` buffer."""
    if embeddings.dim() != 2 or embeddings.shape[1] != len(names) + 1:
        raise WeightsError(f'{EMBEDDINGS} has shape {tuple(embeddings.shape)}, which does not fit '
                           f'{len(names)} class names plus background')
    table = embeddings.t().float()
    return table[:-1].contiguous(), table[-1].contiguous()


def default_class_names(num_classes: int) -> List[str]:
    """The reference's class order for its two benchmarks (OV-COCO: 65, OV-LVIS: 1203)."""
    if num_classes == 65:
        from ...datasets.ov_splits import ov_coco_classes
        return list(ov_coco_classes())
    if num_classes == 1203:
        from ...datasets.ov_splits import lvis_v1_classes
        return [LVIS_V1_SPELLING.get(n, n) for n in lvis_v1_classes()]
    raise ConfigError(f"the checkpoint embeds {num_classes} classes (not OV-COCO's 65 or "
                      "OV-LVIS' 1203): give their names in its order with --class-names FILE.json")


def default_seen_classes(names: Sequence[str]) -> List[str]:
    """The classes the released model was trained on, where known without data (OV-COCO)."""
    if len(names) == 65:
        from ...datasets.ov_splits import OV_COCO_BASE_CLASSES
        return list(OV_COCO_BASE_CLASSES)
    return []


def _with_aliases(names: List[str], table: Tensor) -> Tuple[List[str], Tensor]:
    """Also file LVIS classes under mmdet's spelling (``dataset:lvis`` vocabularies use it)."""
    extra = [(alias, names.index(original)) for alias, original in LVIS_V1_SPELLING.items()
             if original in names and alias not in names]
    if not extra:
        return names, table
    return names + [a for a, _ in extra], torch.cat([table, table[[i for _, i in extra]]])


def _read_names(path: str, what: str) -> List[str]:
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        names = json.loads(text) if text.lstrip().startswith('[') else \
            [line.strip() for line in text.splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise ConfigError(f'cannot read {what} {path}: {exc}') from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f'{what} {path} must be a JSON list of names (or one name per line)')
    return names


# ------------------------------------------------------------------ the tool
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', help='our config of the converted model (default: '
                        'configs/ov_det/fvit_vitamin_l_ovlvis.py for a checkpoint with a mask '
                        'head, else fvit_vitamin_l_ovcoco.py)')
    parser.add_argument('--class-names', help='JSON list of the class names of the '
                        "checkpoint's embeddings, in order (default: OV-COCO's 65 / LVIS' 1203)")
    parser.add_argument('--seen-classes', help='JSON list of the classes the model was trained '
                        "on (default: OV-COCO's 48 base classes; LVIS: taken from the "
                        'evaluation data set)')
    parser.add_argument('--cfg-options', nargs='+', action=_DictAction, default={},
                        help='override config entries, e.g. model.backbone.weights=FILE')


class _DictAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction
        DictAction(self.option_strings, self.dest)(parser, namespace, values, option_string)


def convert(args: argparse.Namespace) -> None:
    """``tools/convert_checkpoint.py fvit SRC DST``: a checkpoint, or a class-embedding file."""
    raw = read_foreign_checkpoint(args.src)
    if _is_embedding_file(raw):
        convert_embedding_file(raw, args.src, args.dst)
        return
    convert_checkpoint(raw, args.src, args.dst, config=args.config,
                       class_names=args.class_names, seen_classes=args.seen_classes,
                       cfg_options=args.cfg_options)


def _is_embedding_file(obj: dict) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, Tensor) and v.dim() == 1
                             for k, v in obj.items())


def convert_embedding_file(obj: Dict[str, Tensor], src: str, dst: str) -> None:
    """Reference ``{name: vector}`` file -> a table file (safetensors) for FViTTextEncoder."""
    if not dst.endswith('.safetensors'):
        raise ConfigError(f'{src} is a class-embedding file: write it to a .safetensors file '
                          f'(got {dst})')
    dims = {int(v.shape[0]) for v in obj.values()}
    if len(dims) != 1:
        raise WeightsError(f'{src}: embeddings of different widths {sorted(dims)}')
    names = list(obj)
    save_class_embeddings(dst, names, torch.stack([obj[n].float() for n in names]))
    print(f'wrote {dst}: {len(names)} class embeddings of width {dims.pop()}; use it with '
          f"model.text_encoder.class_embeddings='{dst}'")


def convert_checkpoint(raw: dict, src: str, dst: str, config: Optional[str] = None,
                       class_names: Optional[str] = None, seen_classes: Optional[str] = None,
                       cfg_options: Optional[dict] = None) -> None:
    """Released MMDetection 2.x checkpoint -> a checkpoint of our detector (strict-loadable)."""
    state = foreign_state_dict(raw, src)
    if EMBEDDINGS not in state:
        raise WeightsError(f'{src} has no {EMBEDDINGS}: not a released Sliding F-ViT checkpoint')
    mapped, embeddings = convert_state_dict(state)
    names = _read_names(class_names, 'class names') if class_names else \
        default_class_names(embeddings.shape[1] - 1)
    table, background = split_embeddings(embeddings, names)
    mapped['roi_head.bbox_head.background_embedding'] = background
    seen = _read_names(seen_classes, 'seen classes') if seen_classes else \
        default_seen_classes(names)
    table_names, table = _with_aliases(names, table)
    if config is None:
        kind = 'ovlvis' if any(k.startswith('roi_head.mask_head.') for k in mapped) else 'ovcoco'
        from ...utils.packaged import packaged_config
        config = packaged_config(CONFIGS[kind])
    model, cfg = _build(config, cfg_options)
    own = model.state_dict()
    _check_fit(own, mapped, src, config)
    full = dict(own)
    full.update(mapped)
    model.load_state_dict(full, strict=True)
    model.text_encoder.set_table(table_names, table)
    model.set_extra_state({'seen_classes': sorted({normalize_name(n) for n in seen})})
    meta = dict(cfg=cfg.pretty_text, converted_from=osp.basename(src),
                dataset_meta=dict(classes=tuple(names)))
    _save({'meta': meta, 'state_dict': model.state_dict()}, dst)
    print(f'wrote {dst}: {len(mapped)} tensors from {osp.basename(src)}, {len(names)} class '
          f'embeddings; evaluate with python tools/test.py {osp.relpath(config)} {dst}')


def _build(config: str, cfg_options: Optional[dict]):
    from mmengine.registry import MODELS, DefaultScope

    from ...engine.config import load_config
    from ...registry import register_all_modules
    from .text import FViTTextEncoder
    cfg = load_config(config, cfg_options or None)
    text = cfg.model.get('text_encoder') or {}
    if str(text.get('type', '')).split('.')[-1] != FViTTextEncoder.__name__:
        raise ConfigError(f'{config}: the released F-ViT needs text_encoder type '
                          f"'FViTTextEncoder' (got {text.get('type')!r})")
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'vitamin_dense')):
        model = MODELS.build(cfg.model)
    return model.eval(), cfg


def _check_fit(own: Dict[str, Tensor], mapped: Dict[str, Tensor], src: str, config: str) -> None:
    unexpected = sorted(k for k in mapped if k not in own)
    missing = sorted(k for k in own if k not in mapped and not k.startswith(OWN_ONLY)
                     and not k.endswith('._extra_state'))
    bad = sorted(k for k in mapped if k in own and tuple(own[k].shape) != tuple(mapped[k].shape))
    if unexpected or missing or bad:
        if bad:
            example = f'{bad[0]}: {tuple(mapped[bad[0]].shape)} vs {tuple(own[bad[0]].shape)}'
        else:
            example = (missing + unexpected)[0]
        raise WeightsError(f'{src} does not fit {config}: {len(missing)} missing, '
                           f'{len(unexpected)} unexpected, {len(bad)} mis-shaped keys (e.g. '
                           f'{example}); pass the --config of the released model')


def _save(checkpoint: dict, dst: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    tmp = f'{dst}.{os.getpid()}.partial'
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


__all__ = ['KEY_MAP', 'map_key', 'convert_state_dict', 'split_embeddings',
           'default_class_names', 'add_arguments', 'convert', 'convert_checkpoint',
           'convert_embedding_file']
