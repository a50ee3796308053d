"""FC-CLIP-style open-vocabulary segmentor on a frozen ViTamin (MMEngine ``BaseModel``).

    image -> OVSegDataPreprocessor -> ViTaminBackbone (sliding window) -> s4..s32, s16 tokens
          -> FCCLIPHead (pixel decoder, masked-attention decoder, in-vocab classifier)
          -> out-of-vocab classifier (mask-pooled frozen tokens) -> geometric ensemble
          -> semantic / panoptic / instance outputs in the data samples

Modes (MMEngine): ``loss`` (Hungarian-matched set losses on the training
vocabulary), ``predict`` (data samples with ``pred_sem_seg``,
``pred_panoptic_seg`` and ``pred_instances``, what mmdet / mmseg metrics
read), ``tensor`` (class probabilities and mask logits).

Vocabularies: the training vocabulary (class names the in-vocabulary
classifier learns against; its labels index the training data) and the test
vocabulary (what predictions are over). Both are set from the data sets'
metainfo by :class:`~vitamin_dense.engine.VocabularyHook`
before training / validation / testing, fixed in the config
(``train_vocabulary`` / ``test_vocabulary``), or set with
:meth:`FCCLIPSegmentor.set_vocabulary` (the demo and the Python API). The
training vocabulary is saved in checkpoints, so seen / unseen classes are
known at test time without the training data.
"""
from __future__ import annotations

import copy
import json
import logging
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import InstanceData, PixelData
from torch import Tensor, nn

from ...errors import ConfigError, VocabularyError
from .head import geometric_ensemble
from ...registry import MODELS
from ...text.classifier import SYNONYM_REDUCTIONS, group_synonyms
from ...text.vocabulary import VocabSpec
from .data_preprocessor import OVSegDataPreprocessor  # noqa: F401  (registers the type)
from .global_position import build_global_position_maps
from .postprocess import MaskResizer, mask_inference
from .vocabulary import SegVocabulary, seen_flags

logger = logging.getLogger(__name__)

DEFAULT_TEST_CFG = dict(
    semantic_on=True,       # pred_sem_seg (argmax over classes) [+ seg_logits]
    panoptic_on=True,       # pred_panoptic_seg (mmdet: label + id * INSTANCE_OFFSET)
    instance_on=True,       # pred_instances (masks, labels, scores, bboxes)
    object_mask_thr=0.0,    # panoptic: minimum class score of a kept query (FC-CLIP's eval)
    overlap_thr=0.8,        # panoptic: minimum visible fraction of a query's mask
    max_per_image=100,      # instance: best (query, class) pairs kept
    stride=None,            # sliding-window stride at test time (None: backbone.test_stride)
    return_seg_logits=False,  # also store the (K, H, W) semantic scores
    max_elements=64 * 2 ** 20,  # bound on one chunk of upsampled masks
)
DEFAULT_ENSEMBLE = dict(alpha=0.45, beta=0.7, use_in_vocab=True, use_out_vocab=True,
                        ensemble_on_valid_mask=True)


class _VocabularyState(nn.Module):
    """Carries the training vocabulary in ``state_dict`` (as a JSON byte tensor)."""

    def __init__(self):
        super().__init__()
        self.vocab: Optional[SegVocabulary] = None

    def get_extra_state(self) -> Tensor:
        state = {'train': self.vocab.to_state() if self.vocab is not None else None}
        return torch.tensor(list(json.dumps(state).encode('utf-8')), dtype=torch.uint8)

    def set_extra_state(self, state) -> None:
        if isinstance(state, Tensor):
            state = json.loads(bytes(state.tolist()).decode('utf-8'))
        train = (state or {}).get('train')
        self.vocab = SegVocabulary.from_state(train) if train else None


@MODELS.register_module()
class FCCLIPSegmentor(BaseModel):
    """Open-vocabulary semantic / instance / panoptic segmentation (FC-CLIP on ViTamin).

    Args:
        backbone: :class:`~vitamin_dense.backbones.ViTaminBackbone` config
            (frozen by default; ``frozen=False, trainable_blocks=N`` fine-tunes).
        head: :class:`~vitamin_dense.heads.FCCLIPHead` config (input channels
            and the embedding size are filled in from the backbone).
        criterion: :class:`~vitamin_dense.models.fcclip.criterion.MaskFormerCriterion`
            config (built on the first ``loss`` call: needs mmdet).
        text_encoder: :class:`~vitamin_dense.text.TextClassifier` config
            (model name and weights default to the backbone's).
        train_vocabulary / test_vocabulary: fixed vocabularies (strings, lists,
            ``dataset:NAME``); default: set from the data sets by the hook.
        thing_classes: names of thing classes for fixed vocabularies.
        ensemble: ``alpha`` (seen), ``beta`` (unseen), ``use_in_vocab``,
            ``use_out_vocab``, ``ensemble_on_valid_mask`` (FC-CLIP's option: only
            masks covering a token get the out-of-vocabulary branch; see
            :func:`geometric_ensemble`).
        synonym_reduce: ``'mean'`` (one embedding per class, the mean over its
            synonyms) or ``'max'`` (FC-CLIP: each synonym is a classifier row,
            a class scores its synonyms' largest logit, in both branches and in
            training).
        global_pos_embed: ``dict(size=1344)`` adds learned position maps to
            the head's inputs ``s4 .. s32`` (Sliding FC-CLIP, see
            :mod:`~vitamin_dense.models.fcclip.global_position`; inputs must then
            be ``size x size``, or add ``interpolate=True``); None: none.
        center_text_embeddings: for the in-vocabulary classifier, subtract the
            vocabulary's mean class embedding and renormalise. Only for randomly
            initialised text towers (the offline tiny config), whose class
            embeddings are nearly parallel (cosine ~0.97); pretrained CLIP
            embeddings are used as they are (FC-CLIP).
        test_cfg: see ``DEFAULT_TEST_CFG``.
        data_preprocessor: :class:`OVSegDataPreprocessor` config.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 criterion: Optional[dict] = None,
                 text_encoder: Optional[dict] = None,
                 train_vocabulary: Optional[VocabSpec] = None,
                 test_vocabulary: Optional[VocabSpec] = None,
                 thing_classes: Optional[Sequence[str]] = None,
                 ensemble: Optional[dict] = None,
                 synonym_reduce: str = 'mean',
                 global_pos_embed: Optional[dict] = None,
                 center_text_embeddings: bool = False,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='OVSegDataPreprocessor')
        if isinstance(data_preprocessor, dict):  # our scope, whatever the default scope
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        # options first: a typo fails before any weights load
        ens = dict(DEFAULT_ENSEMBLE)
        unknown = set(ensemble or {}) - set(ens)
        if unknown:
            raise ConfigError(f'unknown ensemble option(s) {sorted(unknown)}; known: {sorted(ens)}')
        ens.update(ensemble or {})
        if not (ens['use_in_vocab'] or ens['use_out_vocab']):
            raise ConfigError('ensemble: use_in_vocab and use_out_vocab cannot both be False')
        if synonym_reduce not in SYNONYM_REDUCTIONS:
            raise ConfigError(f"synonym_reduce must be one of {list(SYNONYM_REDUCTIONS)}, "
                              f"got '{synonym_reduce}'")
        self.synonym_reduce = synonym_reduce
        cfg = dict(DEFAULT_TEST_CFG)
        unknown = set(test_cfg or {}) - set(cfg)
        if unknown:
            raise ConfigError(f'unknown test_cfg option(s) {sorted(unknown)}; known: {sorted(cfg)}')
        cfg.update(test_cfg or {})
        backbone = copy.deepcopy(dict(backbone))
        self.backbone = MODELS.build(backbone)
        text_cfg = dict(type='TextClassifier')
        text_cfg.update(text_encoder or {})
        text_cfg.setdefault('model_name', self.backbone.model_name)
        text_cfg.setdefault('weights', backbone.get('weights', 'datacomp1b'))
        text_cfg.setdefault('progress', False)
        self.text_encoder = MODELS.build(text_cfg)
        if self.text_encoder.embed_dim != self.backbone.clip_dim:
            raise ConfigError(f'text encoder width {self.text_encoder.embed_dim} differs from '
                              f'the image tower\'s CLIP width {self.backbone.clip_dim}: use the '
                              'same model_name for both')
        head_cfg = dict(type='FCCLIPHead')
        head_cfg.update(head)
        head_cfg.setdefault('in_channels', [self.backbone.channels[f's{s}'] for s in
                                            head_cfg.get('strides', (4, 8, 16, 32))])
        head_cfg.setdefault('embed_dim', self.backbone.clip_dim)
        self.head = MODELS.build(head_cfg)
        self.global_pos_embed = None
        if global_pos_embed is not None:
            levels = [f's{s}' for s in head_cfg.get('strides', (4, 8, 16, 32))]
            self.global_pos_embed = build_global_position_maps(
                global_pos_embed, self.backbone.channels,
                {lvl: int(lvl[1:]) for lvl in levels}, levels)
        self.criterion_cfg = criterion if criterion is not None else dict(type='MaskFormerCriterion')
        self._criterion: Optional[nn.Module] = None
        self.ensemble = ens
        self.center_text_embeddings = center_text_embeddings
        self.test_cfg = cfg
        self.vocabularies = _VocabularyState()
        self._test_vocab: Optional[SegVocabulary] = None
        self.fixed_train_vocabulary = train_vocabulary is not None
        self.fixed_test_vocabulary = test_vocabulary is not None
        if train_vocabulary is not None:
            self.set_vocabulary(train_vocabulary, 'train', thing_classes)
        if test_vocabulary is not None:
            self.set_vocabulary(test_vocabulary, 'test', thing_classes)
        self._embedding_cache: Dict[str, tuple] = {}
        self._seen_cache: Optional[tuple] = None

    # ------------------------------------------------------------- vocabulary
    @property
    def train_vocabulary(self) -> Optional[SegVocabulary]:
        return self.vocabularies.vocab

    @property
    def test_vocabulary(self) -> Optional[SegVocabulary]:
        """The vocabulary predictions are over (the training one if none was set)."""
        return self._test_vocab if self._test_vocab is not None else self.vocabularies.vocab

    def set_vocabulary(self, vocabulary: Union[VocabSpec, SegVocabulary], mode: str = 'test',
                       thing_classes: Optional[Sequence[str]] = None) -> SegVocabulary:
        """Set the ``'train'`` or ``'test'`` vocabulary; returns it."""
        if mode not in ('train', 'test'):
            raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
        vocab = vocabulary if isinstance(vocabulary, SegVocabulary) else \
            SegVocabulary.from_spec(vocabulary, thing_classes)
        if mode == 'train':
            self.vocabularies.vocab = vocab
        else:
            self._test_vocab = vocab
        return vocab

    def set_dataset_vocabulary(self, metainfo: dict, mode: str) -> SegVocabulary:
        """Take the ``'train'`` / ``'test'`` vocabulary from a data set's metainfo.

        The :class:`~vitamin_dense.engine.VocabularyHook` protocol: ``classes``
        with their ``synonyms``, things from ``thing_classes``.
        """
        where = 'the training data set' if mode == 'train' else 'the evaluation data set'
        vocab = self.set_vocabulary(SegVocabulary.from_metainfo(metainfo, where), mode)
        logger.info('%s vocabulary from %s: %d classes (%d things)', mode, where, len(vocab),
                    sum(vocab.is_thing))
        return vocab

    def _require(self, mode: str) -> SegVocabulary:
        vocab = self.train_vocabulary if mode == 'train' else self.test_vocabulary
        if vocab is None:
            raise VocabularyError(
                f'no {mode} vocabulary: train with VocabularyHook (or set '
                f'model.{mode}_vocabulary in the config), or call '
                f'model.set_vocabulary("cat,dog", "{mode}")')
        return vocab

    def class_embeddings(self, mode: str) -> Tensor:
        """Normalised text embeddings of the train / test vocabulary (cached).

        ``(K, E)`` with ``synonym_reduce='mean'``; ``(K, M, E)``, each class's
        synonyms (:func:`~vitamin_dense.text.classifier.group_synonyms`), with ``'max'``.
        """
        vocab = self._require(mode)
        entry = self._embedding_cache.get(mode)  # (vocabulary, embeddings)
        if entry is None or entry[0] is not vocab or entry[1].device != self.text_encoder.device:
            if self.synonym_reduce == 'max':
                emb = group_synonyms(self.text_encoder.encode_synonyms(vocab.vocab).detach(),
                                     [len(c) for c in vocab.classes])
            else:
                emb = self.text_encoder.encode(vocab.vocab).detach()
            entry = (vocab, emb)
            self._embedding_cache[mode] = entry
        return entry[1]

    def in_vocab_embeddings(self, mode: str) -> Tensor:
        """Text embeddings the in-vocabulary classifier compares with (see ``center_text_embeddings``)."""
        emb = self.class_embeddings(mode)
        if self.center_text_embeddings and emb.shape[0] > 1:
            emb = F.normalize(emb - emb.reshape(-1, emb.shape[-1]).mean(0), dim=-1)
        return emb

    def seen_classes(self) -> Tensor:
        """``(K_test,)`` bool: test classes that are in the training vocabulary."""
        key = (self._require('test'), self.train_vocabulary)
        if self._seen_cache is None or self._seen_cache[0][0] is not key[0] or \
                self._seen_cache[0][1] is not key[1]:  # vocabularies changed (or a checkpoint)
            self._seen_cache = (key, seen_flags(*key))
        return self._seen_cache[1]

    # ------------------------------------------------------------------ parts
    @property
    def criterion(self) -> nn.Module:
        if self._criterion is None:
            cfg = dict(self.criterion_cfg)
            self._criterion = MODELS.build(cfg)
        return self._criterion

    def extract_feat(self, inputs: Tensor, stride: Optional[int] = None) -> Dict[str, Tensor]:
        """Stitched backbone maps ``s4 .. s32`` (and ``clip`` if enabled)."""
        return self.backbone(inputs, stride=stride)

    @property
    def fixed_input_size(self) -> Optional[int]:
        """The square input size the global position maps need (None: any size)."""
        maps = self.global_pos_embed
        return None if maps is None or maps.interpolate else maps.size

    def head_inputs(self, feats: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """The head's inputs: the backbone maps plus the global position maps, if any
        (the out-of-vocabulary branch keeps pooling the plain ``s16`` tokens)."""
        return feats if self.global_pos_embed is None else self.global_pos_embed(feats)

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs)
        raise ValueError(f"invalid mode {mode!r}: use 'loss', 'predict' or 'tensor'")

    # ------------------------------------------------------------------- loss
    def loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        vocab = self._require('train')
        feats = self.extract_feat(inputs)
        # every decoder step is classified only when the criterion supervises them all
        out = self.head(self.head_inputs(feats), self.in_vocab_embeddings('train'),
                        all_steps=self.criterion.deep_supervision)
        targets = [segment_targets(s, vocab, inputs.shape[-2:]) for s in data_samples]
        return self.criterion(out['pred_logits'], out['pred_masks'], targets)

    # ----------------------------------------------------------------- inference
    def _forward(self, inputs: Tensor, stride: Optional[int] = None) -> Dict[str, Tensor]:
        """Class probabilities ``(B, Q, K + 1)`` (ensembled, void last) and mask logits."""
        if stride is None and not self.training:
            stride = self.test_cfg['stride']
        feats = self.extract_feat(inputs, stride=stride)
        embeddings = self.class_embeddings('test')
        out = self.head(self.head_inputs(feats), self.in_vocab_embeddings('test'),
                        all_steps=False)
        masks = out['pred_masks'][-1]
        in_logits = out['pred_logits'][-1]
        ens = self.ensemble
        out_logits, valid = None, None
        if ens['use_out_vocab']:
            # CLIP's own temperature: the text tower's logit_scale (in the checkpoint)
            out_logits, valid = self.head.out_vocab_logits(
                masks, feats['s16'], self.backbone, embeddings,
                self.text_encoder.logit_scale.detach().float().exp())
        probs = geometric_ensemble(
            in_logits, out_logits, self.seen_classes(), ens['alpha'], ens['beta'],
            valid if ens['ensemble_on_valid_mask'] else None, ens['use_in_vocab'],
            ens['use_out_vocab'])
        return dict(class_probs=probs, mask_logits=masks)

    def predict(self, inputs: Tensor, data_samples: Optional[list] = None,
                rescale: bool = True) -> list:
        """Fill each data sample with ``pred_sem_seg``, ``pred_panoptic_seg``, ``pred_instances``.

        Outputs are at ``ori_shape`` with ``rescale`` (else ``img_shape``).
        ``pred_sem_seg`` holds the label map under both ``sem_seg`` (mmdet)
        and ``data`` (mmseg).
        """
        if data_samples is None:
            from mmengine.structures import BaseDataElement
            h, w = inputs.shape[-2:]
            data_samples = [BaseDataElement(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
                            for _ in range(inputs.shape[0])]
        with torch.no_grad():
            out = self._forward(inputs)
        return self.postprocess(out, tuple(inputs.shape[-2:]), data_samples, rescale)

    def postprocess(self, out: Dict[str, Tensor], padded_size, data_samples: list,
                    rescale: bool = True, **test_cfg) -> list:
        """Turn ``_forward``'s class probabilities and mask logits into data-sample outputs.

        ``test_cfg`` overrides entries of :attr:`test_cfg` for this call.
        """
        vocab = self._require('test')
        device = out['class_probs'].device
        is_thing = vocab.thing_tensor(device)
        unknown = set(test_cfg) - set(self.test_cfg)
        if unknown:
            raise ConfigError(f'unknown test_cfg option(s) {sorted(unknown)}')
        cfg = dict(self.test_cfg, **test_cfg)
        padded = tuple(int(s) for s in padded_size)
        for probs, masks, sample in zip(out['class_probs'], out['mask_logits'], data_samples):
            img_shape = tuple(sample.metainfo.get('img_shape', padded))[:2]
            out_size = tuple(sample.metainfo.get('ori_shape', img_shape))[:2] if rescale \
                else img_shape
            resizer = MaskResizer(masks, padded, img_shape, out_size, cfg['max_elements'])
            res = mask_inference(
                probs, resizer, is_thing, semantic=cfg['semantic_on'],
                panoptic=cfg['panoptic_on'], instance=cfg['instance_on'],
                object_mask_thr=cfg['object_mask_thr'], overlap_thr=cfg['overlap_thr'],
                max_per_image=cfg['max_per_image'],
                semantic_scores=cfg['semantic_on'] and cfg['return_seg_logits'])
            if cfg['semantic_on']:
                label = res['sem_seg'][None]
                sample.pred_sem_seg = PixelData(sem_seg=label, data=label)
                if cfg['return_seg_logits']:
                    sample.seg_logits = PixelData(data=res['sem_scores'])
            if cfg['panoptic_on']:
                sample.pred_panoptic_seg = PixelData(sem_seg=res['panoptic'][None],
                                                     metainfo=dict(segments_info=res['segments']))
            if cfg['instance_on']:
                inst = res['instances']
                sample.pred_instances = InstanceData(
                    masks=inst['masks'], labels=inst['labels'], scores=inst['scores'],
                    bboxes=inst['bboxes'])
        return data_samples


def segment_targets(sample, vocab: SegVocabulary, pad_shape) -> InstanceData:
    """Training targets of one data sample: labels ``(n,)`` and bool masks ``(n, H, W)``.

    Things come from ``gt_instances`` (mmdet's panoptic / instance
    pipelines); other classes from ``gt_sem_seg`` (one segment per class
    present; ``255`` and out-of-range labels are ignored). Without
    ``gt_instances`` every class of the semantic map is one segment (semantic
    training data). Crowd regions (``ignored_instances``) are no target.
    """
    device = None
    labels: List[Tensor] = []
    masks: List[Tensor] = []
    has_instances = 'gt_instances' in sample and 'masks' in sample.gt_instances
    if has_instances:
        inst = sample.gt_instances
        m = inst.masks
        if hasattr(m, 'to_tensor'):
            m = m.to_tensor(dtype=torch.bool, device=inst.labels.device)
        m = m.bool()
        if len(m):
            labels.append(inst.labels.long())
            masks.append(m)
        device = inst.labels.device
    if 'gt_sem_seg' in sample:
        seg_data = sample.gt_sem_seg
        seg = seg_data.sem_seg if 'sem_seg' in seg_data else seg_data.data
        seg = seg[0] if seg.dim() == 3 else seg
        device = seg.device
        things = vocab.thing_tensor(seg.device)
        for label in torch.unique(seg).tolist():
            if label < 0 or label >= len(vocab) or (has_instances and bool(things[label])):
                continue
            labels.append(torch.tensor([label], device=seg.device))
            masks.append((seg == label)[None])
    if not labels:
        h, w = pad_shape
        return InstanceData(labels=torch.zeros(0, dtype=torch.long, device=device),
                            masks=torch.zeros(0, h, w, dtype=torch.bool, device=device))
    size = max(m.shape[-2] for m in masks), max(m.shape[-1] for m in masks)
    masks = [F.pad(m, (0, size[1] - m.shape[-1], 0, size[0] - m.shape[-2])) for m in masks]
    out = InstanceData(labels=torch.cat(labels), masks=torch.cat(masks))
    if int(out.labels.max()) >= len(vocab):
        raise VocabularyError(f'ground-truth label {int(out.labels.max())} is outside the '
                              f'training vocabulary of {len(vocab)} classes: the vocabulary '
                              "must be the training data set's class list")
    return out


__all__ = ['FCCLIPSegmentor', 'segment_targets', 'DEFAULT_TEST_CFG', 'DEFAULT_ENSEMBLE']
