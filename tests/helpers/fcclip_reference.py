"""The reduced Sliding FC-CLIP of ``tests/data/fcclip_reference/`` on our side.

The fixtures hold what the reference code (Beckschen/ViTamin ``vitamin_fcclip``)
computed for a reduced model (see ``tests/data/fcclip_reference/SOURCE.md``):
its detectron2-style checkpoint, one input and its outputs. Its CLIP model is
our ``ViTamin-Tiny-T8`` (the image tower of ``ViTamin-Tiny`` with a width-8
text tower, so the checkpoint stays small); the reference ran the same open_clip
config under another name (``META['open_clip_model']``).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Tuple

import torch

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data',
                        'fcclip_reference')
CHECKPOINT = os.path.join(FIXTURES, 'tiny_checkpoint.pth')
OUTPUTS = os.path.join(FIXTURES, 'tiny_outputs.pt')
FULL_SIZE_SHAPES = os.path.join(FIXTURES, 'vitamin_l_336_state_dict_shapes.json')
MODEL_NAME = 'ViTamin-Tiny-T8'

with open(os.path.join(FIXTURES, 'tiny_meta.json'), encoding='utf-8') as _f:
    META = json.load(_f)


def classes(specs: List[str]) -> List[Tuple[str, ...]]:
    """FC-CLIP metadata strings (``'cat, kitty'``) as synonym tuples."""
    return [tuple(n.strip() for n in s.split(',')) for s in specs]


def vocabulary(split: str):
    """The reference's ``'train'`` / ``'test'`` vocabulary as a SegVocabulary."""
    from vitamin_dense.models.fcclip.vocabulary import SegVocabulary
    names = classes(META[f'{split}_classes'])
    return SegVocabulary(vocabulary_spec(split), tuple(i in META[f'{split}_things']
                                                       for i in range(len(names))))


def vocabulary_spec(split: str):
    from vitamin_dense.text.vocabulary import parse_vocabulary
    return parse_vocabulary(classes(META[f'{split}_classes']))


def model_config(**overrides) -> dict:
    """Our FCCLIPSegmentor with the reduced reference's sizes and the published options."""
    cfg = dict(
        type='FCCLIPSegmentor',
        data_preprocessor=dict(type='OVSegDataPreprocessor', pad_size_divisor=32,
                               bgr_to_rgb=True),
        backbone=dict(type='ViTaminBackbone', model_name=MODEL_NAME, weights=None,
                      # the port ran training at its test stride too (it calls eval() first)
                      train_stride=META['stride'], test_stride=META['stride'],
                      s32_mode='subsample', with_clip_map=False, memory_budget_mb=256),
        text_encoder=dict(type='TextClassifier', templates='vild', disk_cache=False),
        synonym_reduce='max',
        global_pos_embed=dict(size=META['global_size']),
        head=dict(type='FCCLIPHead', hidden_dim=META['hidden_dim'],
                  num_queries=META['num_queries'], num_decoder_layers=META['dec_layers'] - 1,
                  num_heads=META['num_heads'],
                  pixel_decoder=dict(num_layers=META['enc_layers'],
                                     ffn_channels=META['pixel_decoder_ffn'], num_groups=32,
                                     fp32_fpn=True),
                  transformer_decoder=dict(ffn_channels=META['dim_feedforward'])),
        ensemble=dict(alpha=META['alpha'], beta=META['beta'],
                      ensemble_on_valid_mask=META['ensemble_on_valid_mask']),
        test_cfg=dict(object_mask_thr=META['object_mask_threshold'],
                      overlap_thr=META['overlap_threshold'],
                      max_per_image=META['test_topk_per_image']))
    cfg.update(overrides)
    return cfg


def reference_outputs() -> Dict[str, torch.Tensor]:
    return torch.load(OUTPUTS, map_location='cpu', weights_only=True)


def reference_checkpoint() -> Dict[str, torch.Tensor]:
    return torch.load(CHECKPOINT, map_location='cpu', weights_only=True)['model']
