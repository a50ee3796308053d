"""Layer-wise learning-rate decay for models with a ViTamin backbone.

MMDetection's and MMSegmentation's ``LearningRateDecayOptimizerConstructor``
find layers by ConvNeXt / BEiT parameter names (``stages.N``, ``layers.N``);
ViTamin's are different (MBConv stem and stages under
``trunk.patch_embed.backbone``, then ``trunk.blocks.N``), so with those
constructors every ViTamin parameter lands in one group. This constructor asks
the backbone itself: :meth:`ViTaminBackbone.get_layer_id` numbers the layers
``0 .. n-1`` (stem + stage 1, stage 2 + strided conv + position embedding, one
per ViT block, then the final norms and projection). Everything outside the
backbone (necks, heads) is layer ``n``. A parameter of layer ``i`` gets

    lr = base_lr * decay_rate ** (n - i)        (heads: base_lr)

Weight decay is zero for 1-D parameters (norms, biases, layer scales), position
embeddings, CLIP temperatures and any ``no_decay_keys``. Frozen parameters
(``requires_grad=False``) are left out of the optimizer entirely.

Config (usable with ``default_scope`` ``vitamin_dense``, ``mmdet`` or ``mmseg``)::

    optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        constructor='ViTaminLayerDecayOptimizerConstructor',
        paramwise_cfg=dict(decay_rate=0.8,
                           custom_keys={'logit_scale': dict(lr_mult=0.1)}))
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from ..errors import ConfigError
from ..registry import OPTIM_WRAPPER_CONSTRUCTORS
from ..utils.openmmlab_alias import alias_into_openmmlab

#: name fragments whose parameters never get weight decay
DEFAULT_NO_DECAY_KEYS: Tuple[str, ...] = ('pos_embed', 'position_embedding', 'cls_token',
                                          'logit_scale', 'temperature', 'rel_pos')

_PARAMWISE_KEYS = {'decay_rate', 'custom_keys', 'no_decay_keys', 'backbone_name'}


def _find_backbones(model: nn.Module, name: Optional[str]) -> List[Tuple[str, nn.Module]]:
    """``(prefix, module)`` of every ViTamin backbone in ``model`` (or the named one)."""
    from ..backbones.vitamin import ViTaminBackbone
    if name is not None:
        modules = dict(model.named_modules())
        if name not in modules:
            raise ConfigError(f"paramwise_cfg.backbone_name='{name}' is not a sub-module of "
                              f'{type(model).__name__}')
        if not hasattr(modules[name], 'get_layer_id'):
            raise ConfigError(f"'{name}' ({type(modules[name]).__name__}) has no get_layer_id(); "
                              'point backbone_name at a ViTaminBackbone')
        return [(name, modules[name])]
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, ViTaminBackbone)]
    if not found:
        raise ConfigError(f'{type(model).__name__} has no ViTaminBackbone: '
                          'ViTaminLayerDecayOptimizerConstructor needs one; use the default '
                          'constructor (DefaultOptimWrapperConstructor) instead')
    return found


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViTaminLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay and no-decay groups for ViTamin models.

    ``paramwise_cfg`` keys:

    * ``decay_rate`` (required, in ``(0, 1]``): lr ratio between a layer and
      the one above it.
    * ``custom_keys``: ``{name fragment: dict(lr_mult=, decay_mult=)}``,
      applied on top of the layer scale; the longest matching fragment wins,
      as in MMEngine's default constructor.
    * ``no_decay_keys``: extra name fragments without weight decay.
    * ``backbone_name``: the backbone's module name, when the model holds
      more than one ViTaminBackbone (default: found automatically).

    Each parameter group carries ``group_name``, ``layer_id``, ``lr_scale``
    and ``param_names`` besides ``params``, ``lr`` and ``weight_decay``, so a
    log or a test can tell which lr each parameter received.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = set(paramwise_cfg) - _PARAMWISE_KEYS
        if unknown:
            raise ConfigError(f'ViTaminLayerDecayOptimizerConstructor: unknown paramwise_cfg '
                              f'key(s) {sorted(unknown)}; known: {sorted(_PARAMWISE_KEYS)}')
        if 'decay_rate' not in paramwise_cfg:
            raise ConfigError('ViTaminLayerDecayOptimizerConstructor needs '
                              'paramwise_cfg.decay_rate (e.g. 0.8)')
        rate = paramwise_cfg['decay_rate']
        if not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ConfigError(f'paramwise_cfg.decay_rate must be in (0, 1], got {rate!r}')
        self.decay_rate = float(rate)
        self.custom_keys: Dict[str, dict] = dict(paramwise_cfg.get('custom_keys', {}) or {})
        for key, mults in self.custom_keys.items():
            bad = set(mults) - {'lr_mult', 'decay_mult'}
            if bad:
                raise ConfigError(f"custom_keys['{key}'] has unknown field(s) {sorted(bad)}; "
                                  'use lr_mult and decay_mult')
        self.no_decay_keys: Sequence[str] = tuple(DEFAULT_NO_DECAY_KEYS) + tuple(
            paramwise_cfg.get('no_decay_keys', ()))
        self.backbone_name: Optional[str] = paramwise_cfg.get('backbone_name')
        # The parent validates custom_keys etc.; give it a non-empty paramwise_cfg
        # so that __call__ goes through add_params.
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        if self.base_wd is None:
            self.base_wd = 0.0

    def _no_decay(self, name: str, param: nn.Parameter) -> bool:
        return param.ndim <= 1 or any(key in name for key in self.no_decay_keys)

    def _custom(self, name: str) -> Tuple[Optional[str], float, float]:
        for key in sorted(self.custom_keys, key=len, reverse=True):
            if key in name:
                mults = self.custom_keys[key]
                return key, float(mults.get('lr_mult', 1.0)), float(mults.get('decay_mult', 1.0))
        return None, 1.0, 1.0

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module=None) -> None:
        """Fill ``params`` with one group per (layer, decay / no decay, custom key)."""
        backbones = _find_backbones(module, self.backbone_name)
        owners = sorted(backbones, key=lambda item: -len(item[0]))
        num_layers = max(b.get_layer_id('')[1] for _, b in backbones)
        groups: 'OrderedDict[Tuple, dict]' = OrderedDict()
        for name, param in module.named_parameters(prefix=prefix.rstrip('.')):
            if not param.requires_grad:
                continue
            layer_id = num_layers
            for owner_name, owner in owners:
                if owner_name == '' or name.startswith(owner_name + '.'):
                    local = name[len(owner_name) + 1:] if owner_name else name
                    layer_id, n = owner.get_layer_id(local)
                    layer_id += num_layers - n  # align shallower backbones at the top
                    break
            no_decay = self._no_decay(name, param)
            key, lr_mult, decay_mult = self._custom(name)
            lr_scale = self.decay_rate ** (num_layers - layer_id)
            group_key = (layer_id, no_decay, key)
            if group_key not in groups:
                tag = f'layer_{layer_id}_{"no_decay" if no_decay else "decay"}'
                groups[group_key] = dict(
                    params=[], param_names=[], layer_id=layer_id, lr_scale=lr_scale,
                    group_name=tag + (f'_{key}' if key else ''),
                    lr=self.base_lr * lr_scale * lr_mult,
                    weight_decay=0.0 if no_decay else self.base_wd * decay_mult)
            groups[group_key]['params'].append(param)
            groups[group_key]['param_names'].append(name)
        params.extend(groups.values())
        lines = [f"  {g['group_name']}: {len(g['params'])} tensors, lr {g['lr']:.3g}, "
                 f"wd {g['weight_decay']:.3g}" for g in groups.values()]
        print_log(f'layer-wise lr decay {self.decay_rate} over {num_layers} backbone layers:\n'
                  + '\n'.join(lines), logger='current')


alias_into_openmmlab(ViTaminLayerDecayOptimizerConstructor, 'OPTIM_WRAPPER_CONSTRUCTORS')

__all__ = ['ViTaminLayerDecayOptimizerConstructor', 'DEFAULT_NO_DECAY_KEYS']
