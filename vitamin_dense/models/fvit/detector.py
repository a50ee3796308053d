"""Sliding F-ViT: the ViTamin paper's open-vocabulary detector on MMDetection 3.x.

    image -> frozen sliding-window ViTamin -> {s4, s8, block(d/2-1), s16, clip}
          -> SlidingFViTAdapter (trainable) -> FPN -> RPN -> FViTRoIHead
                                                            (cosine text classifier,
                                                             class-agnostic boxes, masks)
    test: RoIAlign(1x1) on the dense CLIP map -> geometric ensemble with the detector

A :class:`~mmdet.models.detectors.TwoStageDetector` whose neck is the adapter
followed by a stock mmdet neck (FPN), whose class list is a vocabulary of
names encoded by the frozen CLIP text tower, and whose predict passes the
dense CLIP map to the RoI head.

Vocabulary. Labels of a data set index its ``metainfo['classes']``; the model
follows the data set it is fed: :class:`~vitamin_dense.engine.VocabularyHook`
gives it the training and the evaluation data sets' metainfo
(``set_dataset_vocabulary``; ``loss`` uses the first, ``predict`` the second),
and mmdet's ``DetInferencer`` sets ``dataset_meta`` from the checkpoint. Training
uses the base classes only: with ``metainfo['base_classes']`` (or
``novel_classes``) present, the softmax runs over base classes and background
and labels are re-indexed; an annotation of a novel class in training data is
an error. At test time every class of the vocabulary is scored; a class is
novel (ensemble exponent ``beta``) if the metainfo says so, otherwise if the
model never trained on it (the trained names are saved in checkpoints).
``set_vocabulary('cat,dog')`` switches to any user vocabulary.

Window stride. The published stride is 168 (half the 336 px window), which
is not a multiple of ViTamin's 16 px tokens. ``window_placement='aligned'``
(the default, for new training) snaps ``window_stride`` to the nearest
multiple (168 -> 160) and logs the snap, so every window lands on the token
grid; ``'published'`` keeps 168 and places windows as the released
checkpoints were trained and evaluated (the backbone's ``'published'``
placement: outputs at ``floor(offset / stride)``, the dense CLIP map projected
after averaging the windows' tokens; see docs/ARCHITECTURE.md,
"Design notes").
"""
from __future__ import annotations

import copy
import logging
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.structures import SampleList
from torch import Tensor

from ...backbones.sliding_window import check_placement, snap_stride
from ...errors import ConfigError, VocabularyError
from ...registry import MODELS, register_openmmlab_alias
from ...text.classifier import TextClassifier
from ...text.vocabulary import (VocabSpec, Vocabulary, normalize_name, parse_vocabulary,
                               vocabulary_from_metainfo)
from .adapter import SlidingFViTAdapter
from .text import BACKGROUND

logger = logging.getLogger(__name__)


def _vocabulary(spec) -> Vocabulary:
    if isinstance(spec, (list, tuple)):
        return Vocabulary.from_names(spec)
    return parse_vocabulary(spec)


@MODELS.register_module()
@register_openmmlab_alias('mmdet')
class SlidingFViT(TwoStageDetector):
    """Open-vocabulary two-stage detector on a frozen sliding-window ViTamin.

    Args:
        backbone: :class:`ViTaminBackbone` config (dict outputs, i.e.
            ``return_tuple=False``; it must give the adapter's inputs and, for
            the ensemble, ``clip``).
        neck: mmdet neck after the adapter (FPN); ``in_channels`` defaults to
            the adapter's output channels (from ``backbone.output_shape()``).
        rpn_head, roi_head: mmdet configs (``roi_head`` an :class:`FViTRoIHead`
            with an :class:`FViTBBoxHead`).
        adapter: ``dict(levels=[...], norm='SyncBN')`` for
            :class:`SlidingFViTAdapter` (default levels: the published ones).
        text_encoder: text encoder config: ``type`` ``'TextClassifier'`` (the
            default) or ``'FViTTextEncoder'`` (the published recipe) and their
            arguments (default: the backbone's model and weights).
        window_stride: stride of the sliding windows in training and testing
            (published: 168), snapped to the 16 px token grid unless
            ``window_placement='published'``.
        window_placement: ``'aligned'`` (default) or ``'published'`` (see the
            module doc).
        novel_classes: names always treated as novel at test time (besides
            the data set's ``novel_classes``).
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 rpn_head: dict,
                 roi_head: dict,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 adapter: Optional[dict] = None,
                 text_encoder: Optional[dict] = None,
                 window_stride: Optional[int] = None,
                 novel_classes: Sequence[str] = (),
                 data_preprocessor: Optional[dict] = None,
                 window_placement: str = 'aligned',
                 init_cfg=None):
        backbone = copy.deepcopy(dict(backbone))
        check_placement(window_placement)
        if backbone.get('window_placement', window_placement) != window_placement:
            raise ConfigError(f"window_placement='{window_placement}' and backbone."
                              f"window_placement='{backbone['window_placement']}' disagree; "
                              'set only the detector\'s')
        backbone['window_placement'] = window_placement
        if backbone.get('return_tuple', False):
            raise ConfigError('SlidingFViT needs the named backbone maps: set '
                              'backbone.return_tuple=False')
        if window_stride is not None:
            snapped = int(window_stride) if window_placement == 'published' else \
                snap_stride(int(window_stride))
            if snapped != window_stride:
                logger.warning('F-ViT window stride %s px is not a multiple of the 16 px token '
                               'size; snapped to %s px so that windows share a token grid',
                               window_stride, snapped)
            for key in ('train_stride', 'test_stride'):
                if backbone.get(key) not in (None, snapped):
                    raise ConfigError(f'window_stride={window_stride} and backbone.{key}='
                                      f'{backbone[key]} disagree; set only one')
                backbone[key] = snapped
        uses_clip = roi_head.get('clip_roi_extractor') is not None
        if uses_clip and not backbone.get('with_clip_map', True):
            raise ConfigError('roi_head.clip_roi_extractor pools the dense CLIP map: set '
                              'backbone.with_clip_map=True (or drop the extractor)')
        super().__init__(backbone=backbone, neck=None, rpn_head=rpn_head, roi_head=roi_head,
                         train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.window_placement = window_placement
        adapter = dict(adapter or {})
        self.adapter = SlidingFViTAdapter.from_backbone(
            self.backbone, levels=adapter.get('levels'), norm=adapter.get('norm', 'SyncBN'))
        neck = copy.deepcopy(dict(neck))
        neck.setdefault('in_channels', list(self.adapter.out_channels))
        if list(neck['in_channels']) != list(self.adapter.out_channels):
            raise ConfigError(f"neck.in_channels={list(neck['in_channels'])} but the adapter on "
                              f'{self.backbone.model_name} gives {self.adapter.out_channels}; '
                              'leave neck.in_channels unset to take them from the backbone')
        self.neck = MMDET_MODELS.build(neck)

        text_cfg = dict(text_encoder or {})
        text_type = text_cfg.pop('type', 'TextClassifier')
        text_cls = MODELS.get(text_type) if isinstance(text_type, str) else text_type
        if text_cls is None or not issubclass(text_cls, TextClassifier):
            raise ConfigError(f"text_encoder type '{text_type}' is not a text encoder; use "
                              "'TextClassifier' or 'FViTTextEncoder'")
        text_cfg.setdefault('model_name', self.backbone.model_name)
        text_cfg.setdefault('weights', backbone.get('weights', 'datacomp1b'))
        self.text_encoder = text_cls(**text_cfg)
        head = self.roi_head.bbox_head
        dims = {'backbone CLIP map': self.backbone.clip_dim,
                'text encoder': self.text_encoder.embed_dim, 'box head': head.embed_dim}
        if len(set(dims.values())) != 1:
            raise ConfigError(f'embedding widths differ: {dims}; set roi_head.bbox_head.embed_dim='
                              f'{self.backbone.clip_dim} and use the same ViTamin model for text')
        with torch.no_grad():
            head.background_embedding.copy_(self.text_encoder.encode([BACKGROUND])[0])
        self.extra_novel = {normalize_name(n) for n in novel_classes}
        self._classes: Optional[Vocabulary] = None
        self._base: Optional[set] = None  # normalised names of base classes
        self._novel: set = set()
        self._seen: set = set()           # names trained on (saved in checkpoints)
        self._meta: Optional[dict] = None
        self._mode_meta: Dict[str, dict] = {}  # from VocabularyHook: 'train' / 'test' metainfo
        self._active_mode_meta: Optional[dict] = None
        self._head_key = None

    # -------------------------------------------------------------- vocabulary
    @property
    def dataset_meta(self) -> Optional[dict]:
        """The metainfo the model follows (``classes``, optionally ``base_classes`` / ``novel_classes``)."""
        return self._meta

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[dict]) -> None:
        if meta is not None:
            self.set_dataset_meta(meta)

    def set_dataset_vocabulary(self, metainfo: dict, mode: str) -> None:
        """The classes of the training (``'train'``) or evaluation (``'test'``) data set.

        The :class:`~vitamin_dense.engine.VocabularyHook` protocol: ``loss``
        switches to the training metainfo, ``predict`` to the evaluation one.
        """
        if mode not in ('train', 'test'):
            raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
        self._mode_meta[mode] = dict(metainfo)

    def _activate(self, mode: str) -> None:
        """Make the hook-given vocabulary of ``mode`` current (test falls back to train)."""
        meta = self._mode_meta.get(mode) or self._mode_meta.get('train')
        if meta is not None and meta is not self._active_mode_meta:
            self._apply_meta(meta)
            self._active_mode_meta = meta

    def set_dataset_meta(self, meta: dict) -> None:
        """Follow a data set's metainfo: its classes (with ``synonyms`` when given) and split."""
        self._mode_meta, self._active_mode_meta = {}, None
        self._apply_meta(meta)

    def _apply_meta(self, meta: dict) -> None:
        if 'classes' not in meta:
            raise ConfigError("data set metainfo has no 'classes': an open-vocabulary detector "
                              'needs the class names')
        try:
            classes = vocabulary_from_metainfo(meta, 'the data set')
        except VocabularyError as exc:
            if meta.get('synonyms') is None:
                raise
            logger.warning('ignoring the data set synonyms (%s); using class names only', exc)
            classes = vocabulary_from_metainfo({'classes': meta['classes']}, 'the data set')
        self._set_vocabulary(classes, base_classes=meta.get('base_classes'),
                             novel_classes=meta.get('novel_classes'))
        self._meta = dict(meta)

    def set_vocabulary(self, classes: VocabSpec, base_classes: Optional[Sequence[str]] = None,
                       novel_classes: Optional[Sequence[str]] = None) -> None:
        """Detect these classes (``'cat,dog'``, a list of names, ``dataset:NAME``, a file).

        ``base_classes`` / ``novel_classes`` give the split; without them a
        class is novel at test time unless the model was trained on it.
        """
        self._mode_meta, self._active_mode_meta = {}, None
        self._set_vocabulary(classes, base_classes, novel_classes)

    def _set_vocabulary(self, classes: VocabSpec, base_classes: Optional[Sequence[str]],
                        novel_classes: Optional[Sequence[str]]) -> None:
        vocab = _vocabulary(classes)
        names = [normalize_name(n) for n in vocab.names]
        base = None if base_classes is None else {normalize_name(n) for n in base_classes}
        novel = set() if novel_classes is None else {normalize_name(n) for n in novel_classes}
        if base is None and novel_classes is not None:
            base = set(names) - novel
        if base is not None:
            novel |= set(names) - base
        self._classes, self._base, self._novel = vocab, base, novel
        self._meta = dict(classes=tuple(vocab.names))
        if base is not None:
            self._meta['base_classes'] = tuple(n for n, k in zip(vocab.names, names) if k in base)
            self._meta['novel_classes'] = tuple(n for n, k in zip(vocab.names, names)
                                                if k not in base)
        self._head_key = None

    def _require_vocabulary(self) -> Vocabulary:
        if self._classes is None:
            raise ConfigError('SlidingFViT has no vocabulary: train / test through a config with '
                              "custom_hooks=[dict(type='VocabularyHook')], or call "
                              "model.set_vocabulary('cat,dog') first")
        return self._classes

    def _train_classes(self) -> List[int]:
        """Indices (into the data set's classes) of the classes trained on."""
        vocab = self._require_vocabulary()
        if self._base is None:
            return list(range(len(vocab)))
        keep = [i for i, n in enumerate(vocab.names) if normalize_name(n) in self._base]
        if not keep:
            raise ConfigError('the training vocabulary has no base class')
        return keep

    def _novel_mask(self) -> Tensor:
        vocab = self._require_vocabulary()
        mask = []
        for name in vocab.names:
            key = normalize_name(name)
            if key in self.extra_novel or key in self._novel:
                mask.append(True)
            elif self._base is not None:
                mask.append(key not in self._base)
            else:
                mask.append(bool(self._seen) and key not in self._seen)
        return torch.tensor(mask, dtype=torch.bool)

    def _use_vocabulary(self, training: bool) -> Optional[Tensor]:
        """Load the class embeddings of the current mode into the box head.

        Returns, in training, the map from data-set labels to head labels
        (-1: not trained on).
        """
        vocab = self._require_vocabulary()
        key = (training, vocab.key(), None if self._base is None else frozenset(self._base),
               frozenset(self._novel), frozenset(self._seen))
        head = self.roi_head.bbox_head
        if training:
            keep = self._train_classes()
            label_map = torch.full((len(vocab),), -1, dtype=torch.long)
            label_map[keep] = torch.arange(len(keep))
        if self._head_key != key:
            embeddings = self.text_encoder.encode(vocab)
            if training:
                head.set_class_embeddings(embeddings[keep])
                self._seen |= {normalize_name(vocab.names[i]) for i in keep}
                key = key[:-1] + (frozenset(self._seen),)
            else:
                head.set_class_embeddings(embeddings, self._novel_mask())
            self._head_key = key
        return label_map if training else None

    def get_extra_state(self) -> dict:
        return {'seen_classes': sorted(self._seen)}

    def set_extra_state(self, state) -> None:
        if isinstance(state, dict):
            self._seen = set(state.get('seen_classes', ()))
            self._head_key = None

    # ----------------------------------------------------------------- forward
    def backbone_maps(self, batch_inputs: Tensor) -> Dict[str, Tensor]:
        """Named maps of the frozen sliding-window backbone."""
        maps = self.backbone(batch_inputs)
        if not isinstance(maps, dict):
            raise ConfigError('SlidingFViT needs backbone.return_tuple=False')
        return maps

    def extract_feat(self, batch_inputs: Tensor):
        return self.neck(self.adapter(self.backbone_maps(batch_inputs)))

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        self._activate('train')
        label_map = self._use_vocabulary(training=True).to(batch_inputs.device)
        samples = []
        for sample in batch_data_samples:
            labels = sample.gt_instances.labels
            mapped = label_map[labels]
            if (mapped < 0).any():
                bad = sorted({self._classes.names[i] for i in labels[mapped < 0].tolist()})
                raise ConfigError(
                    f'training annotations of novel classes {bad[:5]}: open-vocabulary '
                    'training uses base classes only; remove them from the training set '
                    'or from metainfo novel_classes')
            # Shallow copies: the data set's samples keep their own labels.
            gt_instances = sample.gt_instances.new()
            gt_instances.labels = mapped
            sample = sample.new()
            sample.gt_instances = gt_instances
            samples.append(sample)
        return super().loss(batch_inputs, samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        self._activate('test')
        self._use_vocabulary(training=False)
        maps = self.backbone_maps(batch_inputs)
        x = self.neck(self.adapter(maps))
        # Under a bf16 / fp16 autocast (vitamin_dense.utils.precision), the heads run in
        # float32: mmdet's proposal and box post-processing (NMS) need float32 boxes.
        with torch.autocast(batch_inputs.device.type, enabled=False):
            x = tuple(f.float() for f in x)
            clip_map = maps.get('clip')
            clip_map = clip_map.float() if clip_map is not None else None
            if batch_data_samples[0].get('proposals', None) is None:
                rpn_results_list = self.rpn_head.predict(x, batch_data_samples, rescale=False)
            else:
                rpn_results_list = [s.proposals for s in batch_data_samples]
            results_list = self.roi_head.predict(x, rpn_results_list, batch_data_samples,
                                                 rescale=rescale, clip_map=clip_map)
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList = None) -> tuple:
        self._activate('train' if self.training else 'test')
        self._use_vocabulary(training=self.training)
        return super()._forward(batch_inputs, batch_data_samples)
