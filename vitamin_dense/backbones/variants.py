"""The ViTamin variants the toolkit knows, and tiny test variants.

The real variants are open_clip's (``ViTamin-S`` ... ``ViTamin-XL-384``); this
module records what open_clip's configs get wrong or leave implicit (the
window size of ``ViTamin-XL-384``), and registers tiny variants that keep the
real code path (timm's ViTamin classes, open_clip's CLIP wrapper) with a few
narrow blocks, for fast tests and the offline quickstart.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional

import open_clip
from timm.data import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from timm.models import generate_default_cfgs, register_model
from timm.models.vitamin import GeGluMlp, VitCfg, VitConvCfg, _create_vitamin

from ..errors import ConfigError

_CONFIG_DIR = os.path.join(os.path.dirname(__file__), 'model_configs')

# open_clip's ViTamin-XL-384.json says image_size 256 although the weights and
# the timm architecture are 384 px (see docs/ARCHITECTURE.md, "Design notes").
_FORCED_IMAGE_SIZE: Dict[str, int] = {'ViTamin-XL-384': 384}

# Tiny variants defined by this package (their open_clip JSON lives in
# model_configs/). They are random-init only. ViTamin-Tiny-T8 is ViTamin-Tiny
# with a width-8 text tower: whole-model checkpoints of a few MB (test fixtures).
TINY_VARIANTS = ('ViTamin-Tiny', 'ViTamin-Tiny-96', 'ViTamin-Tiny-T8')


@dataclass(frozen=True)
class VariantInfo:
    """What the toolkit needs to know about a variant before building it."""

    name: str
    window_size: int
    embed_dim: int
    pretrained_tags: tuple
    force_image_size: Optional[int] = None

    @property
    def is_tiny(self) -> bool:
        return self.name in TINY_VARIANTS


def _tiny_cfg(size: int) -> dict:
    return {'url': '', 'num_classes': 0, 'input_size': (3, size, size), 'pool_size': None,
            'crop_pct': 1.0, 'interpolation': 'bicubic', 'fixed_input_size': True,
            'mean': OPENAI_CLIP_MEAN, 'std': OPENAI_CLIP_STD,
            'first_conv': 'patch_embed.backbone.stem.conv1', 'classifier': 'head'}


# timm looks this name up in the module of each registered constructor.
default_cfgs = generate_default_cfgs({'vitamin_tiny_64': _tiny_cfg(64),
                                      'vitamin_tiny_96': _tiny_cfg(96)})


@register_model
def vitamin_tiny_64(pretrained: bool = False, **kwargs):
    """A narrow 2-block ViTamin with a 64 px window (tests, quickstart)."""
    embed_cfg = VitCfg(
        embed_dim=(16, 32, 64), depths=(2, 4, 1), stem_width=16,
        conv_cfg=VitConvCfg(norm_layer='layernorm2d', norm_eps=1e-6), head_type='1d')
    model_args = dict(img_size=64, embed_dim=64, depth=2, num_heads=2, mlp_layer=GeGluMlp,
                      mlp_ratio=2., class_token=False, global_pool='avg', embed_cfg=embed_cfg)
    return _create_vitamin('vitamin_tiny_64', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def vitamin_tiny_96(pretrained: bool = False, **kwargs):
    """A narrow 3-block ViTamin with a 96 px window (tests)."""
    embed_cfg = VitCfg(
        embed_dim=(16, 32, 96), depths=(2, 4, 1), stem_width=16,
        conv_cfg=VitConvCfg(norm_layer='layernorm2d', norm_eps=1e-6), head_type='1d')
    model_args = dict(img_size=96, embed_dim=96, depth=3, num_heads=2, mlp_layer=GeGluMlp,
                      mlp_ratio=2., class_token=False, global_pool='avg', embed_cfg=embed_cfg)
    return _create_vitamin('vitamin_tiny_96', pretrained=pretrained, **dict(model_args, **kwargs))


open_clip.add_model_config(_CONFIG_DIR)


def list_variants() -> List[str]:
    """Names of every ViTamin variant that can be built (open_clip's and ours)."""
    return sorted(name for name in open_clip.list_models() if name.startswith('ViTamin-'))


def get_variant(name: str) -> VariantInfo:
    """Look a variant up by its open_clip name, with a clear error if unknown."""
    known = list_variants()
    if name not in known:
        close = [k for k in known if name.lower().replace('_', '-') in k.lower()]
        hint = f" Did you mean {', '.join(close[:3])}?" if close else ''
        raise ConfigError(f"unknown ViTamin model '{name}'.{hint} "
                          f"Known models: {', '.join(known)}")
    cfg = open_clip.get_model_config(name)
    forced = _FORCED_IMAGE_SIZE.get(name)
    window = forced or int(cfg['vision_cfg']['image_size'])
    tags = tuple(open_clip.list_pretrained_tags_by_model(name))
    return VariantInfo(name=name, window_size=window, embed_dim=int(cfg['embed_dim']),
                       pretrained_tags=tags, force_image_size=forced)
