"""Convert the released Sliding FC-CLIP checkpoint (detectron2) into a checkpoint of ours.

    python tools/convert_checkpoint.py fcclip fcclip_vitamin_l.pth fcclip_vitamin_l_ours.pth
    python tools/test.py configs/ov_seg/eval/vitamin_l_ade20k_panoptic.py fcclip_vitamin_l_ours.pth

The released file (linked from Beckschen/ViTamin ``vitamin_fcclip/README.md``)
holds the state dict of the port's ``FCCLIP`` module: the whole open_clip
model under ``backbone.clip_model`` (image tower, text tower, ``logit_scale``),
the head under ``sem_seg_head`` (pixel decoder, transformer decoder with
FC-CLIP's classifier), ``global_pos_embed.res2 .. res5`` and
``void_embedding``. Every tensor is renamed to our
:class:`~vitamin_dense.models.FCCLIPSegmentor` (see :data:`RENAMES`); the
criterion's ``empty_weight`` buffer is dropped (ours is built from the
config). The training vocabulary, which decides the seen / unseen classes of
the ensemble, is written into the checkpoint (COCO panoptic, the training set
of the release, unless ``--train-vocabulary`` says otherwise).

The result is checked against the model the config builds (on the meta
device, no weights allocated): every key present, none left over, every shape
equal; anything else stops with one line. The file is read without full
unpickling (:mod:`vitamin_dense.engine.foreign_checkpoint`) and written
atomically as ``{'meta': ..., 'state_dict': ...}``, loadable with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import argparse
import os
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ...errors import WeightsError

DEFAULT_CONFIG = 'configs/ov_seg/vitamin_l_coco.py'
DEFAULT_TRAIN_VOCABULARY = 'dataset:coco_panoptic'

#: reference keys with no counterpart in our model (not weights of the segmentor)
DROPPED = ('criterion.empty_weight', 'pixel_mean', 'pixel_std')

_LEVELS = {'res2': 's4', 'res3': 's8', 'res4': 's16', 'res5': 's32'}
_PD = 'sem_seg_head.pixel_decoder.'
_TD = 'sem_seg_head.predictor.'

Rename = Union[str, Callable[[re.Match], str]]
#: (pattern on the reference key, our key): the first full match wins
RENAMES: List[Tuple[str, Rename]] = [
    (r'backbone\.clip_model\.visual\.(.+)', r'backbone.visual.\1'),
    (r'backbone\.clip_model\.text\.(.+)', r'text_encoder.text.\1'),
    (r'backbone\.clip_model\.logit_scale', 'text_encoder.logit_scale'),
    (r'global_pos_embed\.(res[2-5])', lambda m: f'global_pos_embed.{_LEVELS[m[1]]}'),
    (r'void_embedding\.weight', 'head.void_embedding.weight'),
    # pixel decoder
    (re.escape(_PD) + r'input_proj\.(\d+)\.([01])\.(weight|bias)',
     r'head.pixel_decoder.input_projs.\1.\2.\3'),
    (re.escape(_PD) + r'transformer\.level_embed', 'head.pixel_decoder.level_embed.weight'),
    (re.escape(_PD) + r'transformer\.encoder\.layers\.(\d+)\.(.+)',
     r'head.pixel_decoder.encoder_layers.\1.\2'),
    (re.escape(_PD) + r'mask_features\.(weight|bias)', r'head.pixel_decoder.mask_features.\1'),
    # FPN levels: adapter_1 / layer_1 is the finest; ours list the coarsest first (fixed up
    # by convert_state_dict, which knows how many levels there are)
    (re.escape(_PD) + r'adapter_(\d+)\.weight', r'head.pixel_decoder.lateral_convs.#\1.0.weight'),
    (re.escape(_PD) + r'adapter_(\d+)\.norm\.(weight|bias)',
     r'head.pixel_decoder.lateral_convs.#\1.1.\2'),
    (re.escape(_PD) + r'layer_(\d+)\.weight', r'head.pixel_decoder.output_convs.#\1.0.weight'),
    (re.escape(_PD) + r'layer_(\d+)\.norm\.(weight|bias)',
     r'head.pixel_decoder.output_convs.#\1.1.\2'),
    # transformer decoder: one of our layers = their cross-attention, self-attention, FFN
    (re.escape(_TD) + r'transformer_cross_attention_layers\.(\d+)\.multihead_attn\.(.+)',
     r'head.transformer_decoder.layers.\1.cross_attn.\2'),
    (re.escape(_TD) + r'transformer_cross_attention_layers\.(\d+)\.norm\.(.+)',
     r'head.transformer_decoder.layers.\1.norm1.\2'),
    (re.escape(_TD) + r'transformer_self_attention_layers\.(\d+)\.self_attn\.(.+)',
     r'head.transformer_decoder.layers.\1.self_attn.\2'),
    (re.escape(_TD) + r'transformer_self_attention_layers\.(\d+)\.norm\.(.+)',
     r'head.transformer_decoder.layers.\1.norm2.\2'),
    (re.escape(_TD) + r'transformer_ffn_layers\.(\d+)\.(linear1|linear2)\.(.+)',
     r'head.transformer_decoder.layers.\1.\2.\3'),
    (re.escape(_TD) + r'transformer_ffn_layers\.(\d+)\.norm\.(.+)',
     r'head.transformer_decoder.layers.\1.norm3.\2'),
    (re.escape(_TD) + r'(decoder_norm|query_feat|query_embed|level_embed|mask_embed)\.(.+)',
     r'head.transformer_decoder.\1.\2'),
    (re.escape(_TD) + r'input_proj\.(\d+)\.(weight|bias)', r'head.transformer_decoder.input_projs.\1.\2'),
    # FC-CLIP's in-vocabulary classifier
    (re.escape(_TD) + r'_mask_pooling_proj\.(.+)', r'head.mask_pooling_proj.\1'),
    (re.escape(_TD) + r'class_embed\.(.+)', r'head.class_embed.\1'),
    (re.escape(_TD) + r'logit_scale', 'head.logit_scale'),
]
_COMPILED = [(re.compile(p), r) for p, r in RENAMES]


def rename_key(key: str) -> Optional[str]:
    """Our name for a reference key (FPN levels still as ``#N``), or None if unknown."""
    for pattern, repl in _COMPILED:
        m = pattern.fullmatch(key)
        if m:
            return repl(m) if callable(repl) else m.expand(repl)
    return None


def _summary(names: Sequence[str], what: str) -> str:
    shown = ', '.join(sorted(names)[:3])
    return f'{len(names)} {what} (e.g. {shown})'


def convert_state_dict(reference: Dict[str, Tensor], source: str = 'checkpoint'
                       ) -> Dict[str, Tensor]:
    """Rename a Sliding FC-CLIP state dict into ours; one-line :class:`WeightsError` if it
    is not one (keys nobody knows are an error, never silently dropped)."""
    if not any(k.startswith('sem_seg_head.') for k in reference):
        raise WeightsError(f'{source} is not an FC-CLIP checkpoint (no sem_seg_head.* weights); '
                           'expected the released Sliding FC-CLIP ViTamin-L model')
    if not any(k.startswith('global_pos_embed.') for k in reference):
        raise WeightsError(f'{source} is an FC-CLIP checkpoint without global_pos_embed.* (the '
                           'ConvNeXt FC-CLIP?); this converter takes the Sliding FC-CLIP '
                           'ViTamin model')
    out: Dict[str, Tensor] = {}
    unknown = []
    num_fpn = len({m[1] for k in reference
                   for m in [re.fullmatch(re.escape(_PD) + r'adapter_(\d+)\.weight', k)] if m})
    for key, value in reference.items():
        if key in DROPPED:
            continue
        new = rename_key(key)
        if new is None:
            unknown.append(key)
            continue
        if '#' in new:  # their finest-first FPN numbering -> our coarsest-first index
            new = re.sub(r'#(\d+)', lambda m: str(num_fpn - int(m[1])), new)
        out[new] = value
    if unknown:
        raise WeightsError(f'{source}: {_summary(unknown, "weights this converter does not know")}'
                           '; is it the released Sliding FC-CLIP ViTamin checkpoint?')
    return out


def expected_state_shapes(model_cfg: dict) -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of the model a config builds, on the meta device (nothing allocated)."""
    import copy

    from ...registry import build_model, register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = copy.deepcopy(model_cfg)
    cfg['backbone']['weights'] = None  # no download: only the shapes are needed
    cfg.setdefault('text_encoder', {})['weights'] = None
    with torch.device('meta'):
        model = build_model(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_against(state: Dict[str, Tensor], expected: Dict[str, Tuple[int, ...]],
                  source: str, config: str) -> None:
    """One-line :class:`WeightsError` unless ``state`` has exactly the expected keys and shapes."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f'{k} {tuple(v.shape)} vs {expected[k]}' for k, v in state.items()
              if k in expected and tuple(v.shape) != tuple(expected[k])
              and not k.endswith('_extra_state')]  # serialised vocabularies vary in length
    problems = [_summary(names, what) for names, what in
                ((missing, 'missing'), (unexpected, 'unexpected'), (shapes, 'mis-shaped'))
                if names]
    if problems:
        raise WeightsError(f'{source} does not fit the model of {config}: '
                           f'{"; ".join(problems)}')


def training_vocabulary_state(spec: str) -> Tensor:
    """The ``vocabularies._extra_state`` tensor of a training vocabulary.

    ``dataset:coco_panoptic`` (the release's training set) follows mmdet's
    label order, things first, so its first 80 classes are things; other
    vocabularies count every class as a thing (only names decide seen / unseen).
    """
    from .segmentor import _VocabularyState
    from .vocabulary import SegVocabulary
    vocab = SegVocabulary.from_spec(spec)
    if spec.strip().lower() == DEFAULT_TRAIN_VOCABULARY:
        from ...datasets.class_names import coco_panoptic_meta
        num_things = len(coco_panoptic_meta()['thing_classes'])
        vocab = SegVocabulary(vocab.vocab, tuple(i < num_things for i in range(len(vocab))))
    holder = _VocabularyState()
    holder.vocab = vocab
    return holder.get_extra_state()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help=f'our config the checkpoint is for (default: {DEFAULT_CONFIG})')
    parser.add_argument('--train-vocabulary', default=DEFAULT_TRAIN_VOCABULARY,
                        help='the vocabulary the released model was trained on, which decides '
                        f'seen / unseen classes (default: {DEFAULT_TRAIN_VOCABULARY})')


def convert(args: argparse.Namespace) -> None:
    from ...engine.config import load_config
    from ...engine.foreign_checkpoint import foreign_state_dict, read_foreign_checkpoint
    cfg = load_config(args.config)
    if cfg.get('model', {}).get('type') != 'FCCLIPSegmentor':
        from ...errors import ConfigError
        raise ConfigError(f'{args.config} does not describe an FCCLIPSegmentor model')
    reference = foreign_state_dict(read_foreign_checkpoint(args.src), args.src)
    state = convert_state_dict(reference, args.src)
    state['vocabularies._extra_state'] = training_vocabulary_state(args.train_vocabulary)
    check_against(state, expected_state_shapes(cfg.model.to_dict()), args.src, args.config)
    meta = dict(source=os.path.basename(args.src), converter='vitamin_dense.models.fcclip.convert',
                config=args.config, train_vocabulary=args.train_vocabulary)
    save_checkpoint_atomic({'meta': meta, 'state_dict': state}, args.dst)
    print(f'wrote {args.dst}: {len(state)} tensors for {args.config}')


def save_checkpoint_atomic(obj: dict, path: str) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename (never half-written)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f'.{os.path.basename(path)}.{os.getpid()}.tmp')
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


__all__ = ['RENAMES', 'DROPPED', 'rename_key', 'convert_state_dict', 'expected_state_shapes',
           'check_against', 'training_vocabulary_state', 'add_arguments', 'convert']
