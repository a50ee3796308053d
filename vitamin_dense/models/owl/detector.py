"""OWL-ViT-style open-vocabulary detector on the ViTamin sliding-window backbone.

    image -> sliding windows -> stitched s16 tokens -> fc_norm(token) * context
          -> LayerNorm -> per-token box / class / objectness heads
    vocabulary -> CLIP text tower -> class embeddings (queries)

Design decisions (see also :mod:`vitamin_dense.models.owl.heads`):

* **Heads on the stitched token map**, not per window. The backbone averages
  overlapping windows into one token map of the whole image; every token
  predicts exactly one box, in coordinates normalised to the *image's* token
  grid. So there is nothing to merge across windows: an object on a window
  border is seen by the tokens on both sides but predicted once per token, as
  anywhere else, and boxes larger than a window are representable (a per-window
  head could not predict them, and would need cross-window de-duplication).
* **One box frame** (``frame_size``): the grid of an ``H x W`` input is
  ``ceil(H/16) x ceil(W/16)`` tokens, and boxes are normalised to a *square*
  frame anchored at the top-left pixel, as OWL pads every image to a square in
  training and at evaluation. With ``frame_size=S`` (the training canvas, e.g.
  896) an image's frame is ``max(S, its longer side)`` and the backbone always
  runs on that square canvas: in training the batch canvas is padded to it, at
  test each image is padded to it. So a box head's offsets decode to the same
  pixels in the loss and in ``predict``, whatever padding a batch adds, and the
  sliding windows (hence the averaged tokens) are the same in training and at
  test. Without ``frame_size`` an image's frame is the square of its own longer
  side and nothing is padded (inference on any size; training tokens then match
  test tokens only for batches of equal-size images). Boxes map back to the
  original image by the per-axis scale of the resize alone.
* **The CLS substitute** (``head.context``): ViTamin has no CLS token; its CLIP
  image embedding pools ``fc_norm(mean(tokens))``. The default ``'image'``
  multiplies each ``fc_norm(token)`` by ``fc_norm(mean of the image's valid
  tokens)``: the same pooled token ViTamin's own CLIP head uses, computed over
  the whole image so that all windows share one context (no seams at window
  borders) and padding never enters it. ``'window'`` uses each window's pooled
  token (exactly what the window saw in pretraining, but different on either
  side of a window border); ``'none'`` skips the product.
* **Batch independence**: at inference, images are cropped to their own size
  (``img_shape``) and run in groups of equal size, so an image's detections
  never depend on the other images of the batch or on batch padding.
* **Training** (OWL-ViT's recipe): one query per training class plus
  pseudo-negative class names that never name a vocabulary object
  (:mod:`~vitamin_dense.models.owl.negatives`); with the LVIS federated loss,
  each image's verified negatives plus random base classes up to 50; Hungarian
  matching and focal / L1 / GIoU losses with mmdet's components, weighted and
  normalised as OWL-ViT (:class:`~vitamin_dense.models.owl.criterion.OwlSetCriterion`),
  imported only when training. ``freeze_text=False`` fine-tunes the text tower
  too (:class:`~vitamin_dense.models.owl.text_queries.TrainableTextQueries`).
"""
from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor

from ...backbones.sliding_window import TOKEN_SIZE, sliding_window_forward
from ...errors import ConfigError, VocabularyError
from .image_query import ImageQuery, select_query_embedding
from .heads import OwlDetectionHead, boxes_to_pixels, masked_token_mean
from ...registry import MODELS
from ...text.vocabulary import (VocabSpec, Vocabulary, normalize_name, parse_vocabulary,
                               vocabulary_from_metainfo)
from .criterion import OwlSetCriterion
from .negatives import (DEFAULT_FEDERATED_NEGATIVES, Protected, build_meaning,
                        federated_query_mask, filter_pool)
from .postprocess import OwlTestConfig, rescale_boxes, select_detections, token_scores
from .text_queries import TrainableTextQueries

logger = logging.getLogger(__name__)


def valid_token_mask(valid_hw: Sequence[Tuple[int, int]], grid_hw: Tuple[int, int],
                     device=None) -> Tensor:
    """``(B, H, W)`` True for tokens that cover image pixels (not batch padding)."""
    gh, gw = grid_hw
    mask = torch.zeros(len(valid_hw), gh, gw, dtype=torch.bool, device=device)
    for i, (h, w) in enumerate(valid_hw):
        mask[i, :-(-int(h) // TOKEN_SIZE), :-(-int(w) // TOKEN_SIZE)] = True
    return mask


def frame_side_tokens(height: int, width: int, frame_size: Optional[int] = None) -> int:
    """Side in tokens of the square box frame of an ``height x width`` image (module doc).

    ``max(frame_size, the longer side rounded up to 16 px) / 16``; without
    ``frame_size`` the longer side alone. The ONNX runtime pads to it too.
    """
    least = 0 if frame_size is None else int(frame_size) // TOKEN_SIZE
    return max(least, -(-max(int(height), int(width)) // TOKEN_SIZE))


def stack_queries(embeddings: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
    """Pad per-image query sets ``(Q_i, E)`` into ``(B, Q, E)`` and a ``(B, Q)`` mask."""
    q = max(e.shape[0] for e in embeddings)
    first = embeddings[0]
    out = first.new_zeros(len(embeddings), q, first.shape[1])
    mask = torch.zeros(len(embeddings), q, dtype=torch.bool, device=first.device)
    for i, e in enumerate(embeddings):
        out[i, :e.shape[0]] = e
        mask[i, :e.shape[0]] = True
    return out, mask


# Not aliased into mmdet's registry: an MMEngine model whose parts (text encoder,
# heads) live in our scope, built from configs with default_scope='vitamin_dense'.
@MODELS.register_module()
class OwlDetector(BaseModel):
    """Open-vocabulary detector: OWL-ViT / OWLv2 heads on ViTamin tokens.

    Args:
        backbone: :class:`~vitamin_dense.backbones.ViTaminBackbone` config
            (only its ``s16`` tokens are used; frozen or fine-tuned as it says).
        text_encoder: :class:`~vitamin_dense.text.TextClassifier` config; by
            default the text tower of the backbone's CLIP model and weights.
        head: :class:`~vitamin_dense.heads.OwlDetectionHead` config (its widths
            are filled in from the backbone and the text encoder).
        vocabulary: the training data's class names in its label order (any
            :func:`~vitamin_dense.text.parse_vocabulary` spec). None: taken
            from the training data set by :class:`VocabularyHook`.
        test_vocabulary: the evaluation data's classes (label order); None:
            from the evaluation data set (hook), else ``vocabulary``. A sample
            may also bring its own ``vocabulary`` in its metainfo.
        train_classes: the classes used as training queries (a vocabulary
            spec of names, or indices into ``vocabulary``; default all). Open-
            vocabulary splits use the base classes (the hook takes the data
            set's ``base_labels``); boxes of other classes are ignored.
        negative_vocabulary: a pool of extra class names; ``num_negatives`` of
            them are sampled at every step as pseudo-negative queries (OWL-ViT).
            Names that could name an object of the training or evaluation
            vocabulary (by meaning, see ``negative_meaning``) are removed from
            the pool, so novel classes never appear in training, not even
            under another name.
        negative_meaning: how names are compared: ``'wordnet'`` (default: the
            bundled LVIS synsets and synonyms, our COCO map and WordNet
            hypernymy, :mod:`~vitamin_dense.models.owl.negatives`), None (by
            their words only), or a dict adding knowledge
            (``synsets={name: [...]}, synonyms={name: [...]},
            hypernyms={synset: [...]}``).
        num_negatives: pseudo-negatives per step.
        federated_loss: LVIS-style federated classification loss: an image's
            class loss covers only its positive classes, the classes verified
            absent in it (its ``neg_labels`` metainfo; keep the key in
            ``PackDetInputs.meta_keys``), random training classes up to
            ``federated_negatives`` negatives (OWL-ViT, Detic; never its
            ``not_exhaustive_labels``) and the pseudo-negatives, so classes
            that may be present but are unannotated are never pushed down on
            purpose. Images without ``neg_labels`` use every query.
        federated_negatives: negatives per image of the federated loss (OWL: 50).
        negative_freq_power: random federated negatives are drawn in
            proportion to ``image_count ** power`` (the data set's
            ``image_counts`` metainfo; Detic 0.5); uniform without counts.
        frame_size: side in pixels of the square box frame (a multiple of 16;
            the training canvas, e.g. 896): see the module doc. None: each
            image's own longer side, no padding.
        freeze_text: keep the text tower frozen (class embeddings cached), as
            the cheap configs do; False fine-tunes it with the rest (OWL-ViT;
            give it its own learning rate with ``paramwise_cfg``).
        train_cfg: ``dict(assigner=..., normalization=..., l1_format=...)``:
            mmdet's ``HungarianAssigner`` config and the criterion's reduction
            (:class:`~vitamin_dense.models.owl.criterion.OwlSetCriterion`).
        test_cfg: :class:`~vitamin_dense.models.owl.postprocess.OwlTestConfig` fields.
        loss_cls / loss_bbox / loss_iou / loss_obj: mmdet loss configs.
        query_iou_ratio: one-shot queries keep boxes within this fraction of
            the best IoU with the exemplar (OWL-ViT: 0.8).
        data_preprocessor: default MMEngine's ``ImgDataPreprocessor`` with the
            backbone's CLIP mean / std, BGR -> RGB and padding to 16 px.
    """

    def __init__(self,
                 backbone: Union[dict, torch.nn.Module],
                 text_encoder: Optional[Union[dict, torch.nn.Module]] = None,
                 head: Optional[dict] = None,
                 vocabulary: Optional[VocabSpec] = None,
                 test_vocabulary: Optional[VocabSpec] = None,
                 train_classes: Optional[Union[VocabSpec, Sequence[int]]] = None,
                 negative_vocabulary: Optional[VocabSpec] = None,
                 num_negatives: int = 0,
                 federated_loss: bool = False,
                 negative_meaning='wordnet',
                 federated_negatives: int = DEFAULT_FEDERATED_NEGATIVES,
                 negative_freq_power: float = 0.5,
                 frame_size: Optional[int] = None,
                 freeze_text: bool = True,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 loss_cls: Optional[dict] = None,
                 loss_bbox: Optional[dict] = None,
                 loss_iou: Optional[dict] = None,
                 loss_obj: Optional[dict] = 'default',
                 query_iou_ratio: float = 0.8,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor or dict(type='BaseDataPreprocessor'),
                         init_cfg=init_cfg)
        backbone_weights = 'datacomp1b'
        if isinstance(backbone, dict):
            backbone = copy.deepcopy(dict(backbone))
            backbone_weights = backbone.get('weights', backbone_weights)
            backbone.update(out_levels=('s16',), with_clip_map=False, return_tuple=False)
            backbone.setdefault('type', 'ViTaminBackbone')
            backbone = MODELS.build(backbone)
        self.backbone = backbone
        # the detector never uses the CLIP projection: keep it out of the optimizer (and DDP)
        projection = getattr(getattr(self.backbone, 'visual', None), 'head', None)
        if projection is not None:
            for p in projection.parameters():
                p.requires_grad = False
        if text_encoder is None:
            text_encoder = dict(type='TextClassifier', model_name=self.backbone.model_name,
                                weights=backbone_weights, templates='vild')
        if isinstance(text_encoder, dict):
            text_encoder = MODELS.build(copy.deepcopy(dict(text_encoder)))
        self.text_encoder = text_encoder
        self.freeze_text = bool(freeze_text)
        self._text_queries: Optional[TrainableTextQueries] = None
        if not self.freeze_text:
            for p in self.text_encoder.text.parameters():
                p.requires_grad = True
            self._text_queries = TrainableTextQueries(self.text_encoder)
            self.register_load_state_dict_post_hook(
                lambda module, incompatible: module._text_queries.invalidate())
        if frame_size is not None and (int(frame_size) < TOKEN_SIZE or
                                       int(frame_size) % TOKEN_SIZE):
            raise ConfigError(f'frame_size must be a positive multiple of {TOKEN_SIZE} px, '
                              f'got {frame_size}')
        self.frame_size = None if frame_size is None else int(frame_size)
        head = copy.deepcopy(dict(head or {}))
        head.setdefault('type', 'OwlDetectionHead')
        head.setdefault('in_channels', self.backbone.channels['s16'])
        head.setdefault('embed_dim', self.text_encoder.embed_dim)
        self.head: OwlDetectionHead = MODELS.build(head)
        if data_preprocessor is None:
            self.data_preprocessor = MODELS.build(dict(
                type='ImgDataPreprocessor', mean=list(self.backbone.pixel_mean),
                std=list(self.backbone.pixel_std), bgr_to_rgb=True, pad_size_divisor=TOKEN_SIZE))

        self._vocab_specs: Dict[str, Optional[VocabSpec]] = {'train': vocabulary,
                                                            'test': test_vocabulary}
        self._vocabs: Dict[str, Optional[Vocabulary]] = {'train': None, 'test': None}
        self.fixed_train_vocabulary = vocabulary is not None
        self.fixed_test_vocabulary = test_vocabulary is not None
        self._train_classes_spec = train_classes
        self.fixed_train_classes = train_classes is not None
        self._negative_spec = negative_vocabulary
        self._negative_exclude: set = set()
        if num_negatives < 0:
            raise ConfigError(f'num_negatives must be >= 0, got {num_negatives}')
        self.num_negatives = int(num_negatives)
        self.federated_loss = bool(federated_loss)
        if federated_negatives < 0:
            raise ConfigError(f'federated_negatives must be >= 0, got {federated_negatives}')
        self.federated_negatives = int(federated_negatives)
        self.negative_freq_power = float(negative_freq_power)
        self.meaning = build_meaning(negative_meaning)
        self._class_weights: Optional[Tensor] = None
        self.query_iou_ratio = float(query_iou_ratio)
        train_cfg = dict(train_cfg or {})
        known = ('assigner', 'normalization', 'l1_format')
        unknown = sorted(set(train_cfg) - set(known))
        if unknown:
            raise ConfigError(f'unknown train_cfg key(s) {unknown}; known: {", ".join(known)}')
        self.criterion = OwlSetCriterion(train_cfg.get('assigner'), loss_cls, loss_bbox,
                                         loss_iou, loss_obj,
                                         normalization=train_cfg.get('normalization',
                                                                     'per_example'),
                                         l1_format=train_cfg.get('l1_format', 'xyxy'))
        self.test_cfg = OwlTestConfig.from_cfg(test_cfg)
        self._train_state: Optional[Dict[str, object]] = None
        self._warned_dropped = False

    # ------------------------------------------------------------ vocabulary
    def _get_vocabulary(self, mode: str) -> Vocabulary:
        if self._vocabs[mode] is None:
            spec = self._vocab_specs[mode]
            if spec is None and mode == 'test':
                return self._get_vocabulary('train')
            if spec is None:
                raise VocabularyError(
                    'this detector has no vocabulary: set model.vocabulary in the config, add '
                    "custom_hooks=[dict(type='VocabularyHook')] to take it from the data set, "
                    'or pass a vocabulary with each image')
            self._vocabs[mode] = parse_vocabulary(spec)
        return self._vocabs[mode]

    @property
    def train_vocabulary(self) -> Vocabulary:
        """Classes of the training labels (label order), parsed on first use."""
        return self._get_vocabulary('train')

    @property
    def test_vocabulary(self) -> Vocabulary:
        """Classes of the evaluation labels (default: the training vocabulary)."""
        return self._get_vocabulary('test')

    vocabulary = train_vocabulary

    def set_vocabulary(self, vocabulary: VocabSpec, mode: str = 'train',
                       train_classes: Optional[Union[VocabSpec, Sequence[int]]] = None) -> None:
        """Replace the ``'train'`` or ``'test'`` vocabulary (what :class:`VocabularyHook` does)."""
        if mode not in ('train', 'test'):
            raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
        self._vocab_specs[mode] = vocabulary
        self._vocabs[mode] = parse_vocabulary(vocabulary)
        if mode == 'train':
            if train_classes is not None:
                self._train_classes_spec = train_classes
            self._train_state = None

    def set_dataset_vocabulary(self, metainfo: dict, mode: str) -> None:
        """Take the ``'train'`` / ``'test'`` vocabulary from a data set's metainfo.

        The :class:`~vitamin_dense.engine.VocabularyHook` protocol. For an
        open-vocabulary training split (``class_subset='base'``) the training
        queries are its ``base_labels``; evaluation classes never become
        pseudo-negatives.
        """
        if mode not in ('train', 'test'):
            raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
        where = 'the training data set' if mode == 'train' else 'the evaluation data set'
        vocab = vocabulary_from_metainfo(metainfo, where)
        if mode == 'test':
            self.set_vocabulary(vocab, 'test')
            self.exclude_from_negatives([n for syn in vocab.classes for n in syn])
            logger.info('test vocabulary from %s: %d classes', where, len(vocab))
            return
        train_classes = None
        if metainfo.get('class_subset') == 'base' and metainfo.get('base_labels') is not None \
                and not self.fixed_train_classes:
            train_classes = list(metainfo['base_labels'])
        self.set_vocabulary(vocab, 'train', train_classes=train_classes)
        counts = metainfo.get('image_counts')
        self._class_weights = None
        if counts is not None and len(counts) == len(vocab) and sum(counts) > 0:
            self._class_weights = torch.as_tensor(counts, dtype=torch.float64)
        logger.info('training vocabulary from %s: %d classes%s', where, len(vocab),
                    '' if train_classes is None else
                    f' ({len(train_classes)} base classes as training queries)')

    def exclude_from_negatives(self, names) -> None:
        """Never sample these names (e.g. the evaluation classes) as pseudo-negatives."""
        self._negative_exclude |= {normalize_name(n) for n in names}
        self._train_state = None

    def encode_vocabulary(self, vocabulary: VocabSpec) -> Tensor:
        """``(K, E)`` normalised class embeddings on the model's device (cached)."""
        if self._text_queries is not None:
            return self._text_queries.eval_embeddings(parse_vocabulary(vocabulary)).to(
                self._device())
        return self.text_encoder.encode(vocabulary).to(self._device())

    def _device(self) -> torch.device:
        return next(self.head.parameters()).device

    def _prepare_training(self) -> Dict[str, object]:
        """Training class indices, label map, class weights and pseudo-negative pool (once)."""
        if self._train_state is not None:
            return self._train_state
        vocab = self.train_vocabulary
        train_idx = self._train_class_indices(vocab)
        label_map = torch.full((len(vocab),), -1, dtype=torch.long)
        label_map[torch.tensor(train_idx, dtype=torch.long)] = torch.arange(len(train_idx))
        train_vocab = Vocabulary(tuple(vocab.classes[i] for i in train_idx))
        weights = None
        if self._class_weights is not None:
            weights = self._class_weights[train_idx].clamp_min(0) ** self.negative_freq_power
        self._train_state = {'label_map': label_map, 'train_vocab': train_vocab,
                             'pool': self.negative_pool(), 'num_train': len(train_idx),
                             'weights': weights}
        return self._train_state

    def negative_pool(self) -> Optional[Vocabulary]:
        """The pseudo-negative names: ``negative_vocabulary`` minus every name that could
        name an object of the training or evaluation vocabulary (see ``negative_meaning``)."""
        if self._negative_spec is None or self.num_negatives == 0:
            return None
        classes = list(self.train_vocabulary.classes)
        if self._vocab_specs['test'] is not None:
            classes += list(self.test_vocabulary.classes)
        protected = Protected.of(classes, self.meaning, self._negative_exclude)
        pool, dropped = filter_pool(parse_vocabulary(self._negative_spec), protected,
                                    self.meaning)
        logger.info('pseudo-negatives: %d per step from a pool of %d names (%d names dropped '
                    'as naming a vocabulary class, e.g. %s)', self.num_negatives, len(pool),
                    len(dropped), ', '.join(dropped[:8]) or '-')
        return pool

    def _train_class_indices(self, vocab: Vocabulary) -> List[int]:
        spec = self._train_classes_spec
        if spec is None:
            return list(range(len(vocab)))
        keys = [normalize_name(n) for n in vocab.names]
        if isinstance(spec, str) or isinstance(spec, Vocabulary):
            spec = parse_vocabulary(spec).names
        indices = []
        for item in spec:
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                raise ConfigError(f'train_classes entries must be names or indices, got {item!r}')
            if isinstance(item, int):
                if not 0 <= item < len(vocab):
                    raise ConfigError(f'train_classes index {item} is outside the '
                                      f'{len(vocab)}-class vocabulary')
                indices.append(item)
            elif normalize_name(item) in keys:
                indices.append(keys.index(normalize_name(item)))
            else:
                raise ConfigError(f"train_classes names '{item}', which is not in the "
                                  'training vocabulary')
        if not indices:
            raise ConfigError('train_classes is empty')
        return sorted(set(indices))

    def sample_negatives(self) -> Tuple[Tuple[str, ...], ...]:
        """This step's pseudo-negative classes, drawn from :meth:`negative_pool`."""
        pool = self._prepare_training()['pool']
        if pool is None:
            return ()
        n = min(self.num_negatives, len(pool))
        return tuple(pool.classes[int(i)] for i in torch.randperm(len(pool))[:n])

    def encode_training_classes(self, classes: Sequence[Tuple[str, ...]]) -> Tensor:
        """``(Q, E)`` queries of training classes: cached ensembles of a frozen text
        tower, or one random prompt per class through a trainable one (with gradient)."""
        if self._text_queries is not None:
            return self._text_queries.train_embeddings(classes).to(self._device())
        return self.encode_vocabulary(Vocabulary(tuple(classes)))

    def training_queries(self) -> Tuple[Tensor, int]:
        """``(K + n, E)`` queries for one step (training classes, then negatives), and K."""
        state = self._prepare_training()
        classes = tuple(state['train_vocab'].classes) + self.sample_negatives()
        return self.encode_training_classes(classes), int(state['num_train'])

    # ------------------------------------------------------------- box frame
    def frame_tokens(self, valid_hw: Sequence[Tuple[int, int]]) -> Tensor:
        """``(B,)`` side of each image's square box frame, in tokens (see ``frame_size``)."""
        return torch.tensor([frame_side_tokens(h, w, self.frame_size) for h, w in valid_hw],
                            dtype=torch.long)

    def _pad_to_canvas(self, images: Tensor, side: int) -> Tensor:
        """Zero-pad (normalised zero: the data preprocessor's padding) to ``side x side``
        at the bottom and right."""
        h, w = images.shape[-2:]
        if h >= side and w >= side:
            return images
        return torch.nn.functional.pad(images, (0, max(0, side - w), 0, max(0, side - h)))

    # -------------------------------------------------------------- features
    def extract_features(self, images: Tensor,
                         valid_hw: Optional[Sequence[Tuple[int, int]]] = None) -> Tensor:
        """Merged token features ``(B, H/16, W/16, D)`` of normalised images.

        ``valid_hw`` gives each image's size inside a padded batch canvas (the
        context is pooled over those tokens only); None means all valid.
        """
        fc_norm = self.backbone.trunk.fc_norm
        if self.head.context == 'window':
            return self.head.layer_norm(self._window_merged_tokens(images))
        tokens = self.backbone(images)['s16'].permute(0, 2, 3, 1)
        normed = fc_norm(tokens)
        context = None
        if self.head.context == 'image':
            valid = None
            if valid_hw is not None:
                valid = self.valid_tokens(valid_hw, tokens.shape[1:3], tokens.device)
            context = fc_norm(masked_token_mean(tokens, valid))[:, None, None, :]
        return self.head.merge(normed, context)

    def valid_tokens(self, valid_hw: Sequence[Tuple[int, int]], grid_hw: Tuple[int, int],
                     device=None) -> Tensor:
        """``(B, H, W)`` mask of the tokens the image context pools (each image's own).

        A method so that the ONNX head graph can take the mask as an input
        (:class:`~vitamin_dense.export.OwlPath`), as it takes the box bias.
        """
        return valid_token_mask(valid_hw, grid_hw, device)

    def _window_merged_tokens(self, images: Tensor) -> Tensor:
        """``fc_norm(t) * fc_norm(mean over the window)`` per window, stitched."""
        bb = self.backbone
        fc_norm = bb.trunk.fc_norm

        def window_fn(x: Tensor) -> Dict[str, Tensor]:
            t = bb.forward_window(x)['s16'].permute(0, 2, 3, 1)
            merged = fc_norm(t) * fc_norm(t.mean(dim=(1, 2)))[:, None, None, :]
            return {'merged': merged.permute(0, 3, 1, 2)}

        grad = torch.is_grad_enabled() and any(p.requires_grad for p in bb.visual.parameters())
        with torch.set_grad_enabled(grad):
            maps = sliding_window_forward(images, window_fn, bb.window_size, bb.stride,
                                          bb.max_windows_per_chunk, progress=bb.progress)
        return maps['merged'].permute(0, 2, 3, 1)

    # ---------------------------------------------------------------- modes
    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f"invalid mode '{mode}': use 'loss', 'predict' or 'tensor'")

    def _run_canvas(self, images: Tensor, valid_hw: Sequence[Tuple[int, int]],
                    queries: Optional[Tensor] = None, query_mask: Optional[Tensor] = None,
                    with_objectness: bool = True) -> Dict[str, Tensor]:
        """Head outputs of a batch canvas, in each image's box frame.

        With ``frame_size`` every image runs on its own square frame canvas
        (images with the same frame together), whatever the batch padding, so
        the sliding windows cover exactly what they cover at test; the token
        maps of smaller frames are zero-padded to the largest for the heads.
        """
        frames = self.frame_tokens(valid_hw)
        if self.frame_size is None:
            feats = self.extract_features(images, valid_hw)
        else:
            groups: Dict[int, List[int]] = OrderedDict()
            for i, f in enumerate(frames.tolist()):
                groups.setdefault(f, []).append(i)
            parts = {}
            for f, idx in groups.items():
                side = f * TOKEN_SIZE
                index = torch.tensor(idx, device=images.device)
                canvas = self._pad_to_canvas(images[index, :, :side, :side], side)
                parts[f] = (idx, self.extract_features(canvas, [valid_hw[i] for i in idx]))
            if len(parts) == 1:
                feats = next(iter(parts.values()))[1]
            else:
                g = int(frames.max())
                first = next(iter(parts.values()))[1]
                feats = first.new_zeros(len(valid_hw), g, g, first.shape[-1])
                for f, (idx, part) in parts.items():
                    feats[idx, :part.shape[1], :part.shape[2]] = part
        return self.head(feats, queries, query_mask, with_objectness=with_objectness,
                         frames=frames)

    def _forward(self, inputs: Tensor, data_samples=None) -> Dict[str, Tensor]:
        """Raw head outputs on the input canvas, with the vocabulary as queries."""
        sizes = _valid_sizes(data_samples) or [tuple(inputs.shape[-2:])] * inputs.shape[0]
        return self._run_canvas(inputs, sizes, self.encode_vocabulary(self.test_vocabulary))

    def loss(self, inputs: Tensor, data_samples: Sequence) -> Dict[str, Tensor]:
        """Hungarian-matched focal / L1 / GIoU (and objectness) losses."""
        state = self._prepare_training()
        sizes = _valid_sizes(data_samples) or [tuple(inputs.shape[-2:])] * inputs.shape[0]
        label_map = state['label_map'].to(inputs.device)
        gt_boxes, gt_labels = [], []
        dropped = 0
        for sample in data_samples:
            inst = sample.gt_instances
            boxes = getattr(inst.bboxes, 'tensor', inst.bboxes).to(inputs.device).float()
            labels = label_map[inst.labels.to(inputs.device).long()]
            keep = labels >= 0
            dropped += int((~keep).sum())
            gt_boxes.append(boxes[keep])
            gt_labels.append(labels[keep])
        if dropped and not self._warned_dropped:
            self._warned_dropped = True
            logger.warning('%d ground-truth boxes of classes outside train_classes were ignored '
                           '(expected for open-vocabulary splits only)', dropped)
        classes = tuple(state['train_vocab'].classes) + self.sample_negatives()
        query_mask = None
        if self.federated_loss:
            query_mask = self._federated_mask(data_samples, gt_labels, label_map,
                                              len(classes), state['num_train'], state['weights'])
        if self._text_queries is not None and query_mask is not None:
            # a trainable text tower encodes only the classes this batch's losses use
            used = query_mask.any(0)
            index = torch.full((len(classes),), -1, dtype=torch.long)
            index[used] = torch.arange(int(used.sum()))
            classes = tuple(c for c, u in zip(classes, used.tolist()) if u)
            query_mask = query_mask[:, used]
            gt_labels = [index.to(lab.device)[lab] for lab in gt_labels]
        queries = self.encode_training_classes(classes)
        if query_mask is not None:
            query_mask = query_mask.to(inputs.device)
        outputs = self._run_canvas(inputs, sizes, queries)
        return self.criterion(outputs, gt_boxes, gt_labels, query_mask)

    def _federated_mask(self, data_samples, gt_labels, label_map: Tensor, num_queries: int,
                        num_train: int, weights: Optional[Tensor] = None) -> Tensor:
        """``(B, Q)``: the queries each image's class loss covers (see ``federated_loss``)."""
        verified, skip = [], []
        for sample in data_samples:
            meta = sample.metainfo if hasattr(sample, 'metainfo') else {}
            verified.append(self._train_labels(meta.get('neg_labels'), label_map))
            skip.append(self._train_labels(meta.get('not_exhaustive_labels'), label_map) or [])
        return federated_query_mask([g.cpu() for g in gt_labels], verified, skip, num_train,
                                    num_queries, self.federated_negatives, weights)

    @staticmethod
    def _train_labels(labels, label_map: Tensor) -> Optional[List[int]]:
        """Data set labels -> training-query indices (classes outside training dropped)."""
        if labels is None:
            return None
        labels = torch.as_tensor(list(labels), dtype=torch.long, device=label_map.device)
        mapped = label_map[labels] if labels.numel() else labels
        return mapped[mapped >= 0].tolist()

    def predict(self, inputs: Tensor, data_samples: Sequence, rescale: bool = True) -> Sequence:
        """Detections in original-image coordinates, set as ``pred_instances``."""
        metas = [dict(s.metainfo) for s in data_samples]
        results = self.detect(inputs, metas, rescale=rescale)
        for sample, result in zip(data_samples, results):
            sample.pred_instances = result
        return data_samples

    # ------------------------------------------------------------ inference
    @torch.no_grad()
    def detect(self, images: Tensor, metas: Optional[Sequence[dict]] = None,
               queries: Optional[Tensor] = None, query_mask: Optional[Tensor] = None,
               rescale: bool = True, test_cfg: Optional[dict] = None) -> List[InstanceData]:
        """Detect in a batch of normalised images; each image independently.

        Args:
            images: ``(B, 3, H, W)``, normalised; image ``i`` occupies the top-left
                ``metas[i]['img_shape']`` (the rest is batch padding).
            metas: per image: ``img_shape`` (input size, default the batch size),
                ``scale_factor`` ``(w, h)`` and ``ori_shape`` to map boxes back,
                optionally ``vocabulary`` (overrides the model's).
            queries: ``(Q, E)`` or ``(B, Q, E)`` query embeddings instead of a
                vocabulary (e.g. one-shot queries), with optional ``query_mask``.
            rescale: map boxes to the original image (else input pixels).

        Returns:
            Per image an ``InstanceData`` with ``bboxes`` (xyxy), ``scores``,
            ``labels`` (index into that image's queries).
        """
        cfg = self.test_cfg if test_cfg is None else OwlTestConfig.from_cfg(
            {**self.test_cfg.__dict__, **dict(test_cfg)})
        b, _, full_h, full_w = images.shape
        metas = [dict(m) for m in (metas or [{} for _ in range(b)])]
        if len(metas) != b:
            raise ValueError(f'{b} images but {len(metas)} metas')
        if queries is None:
            per_image = [self._queries_for(m.get('vocabulary')) for m in metas]
            queries, query_mask = stack_queries(per_image)
        elif queries.dim() == 2:
            queries = queries.unsqueeze(0).expand(b, -1, -1)
        if query_mask is not None and query_mask.dim() == 1:  # one mask for every image
            query_mask = query_mask.unsqueeze(0).expand(b, -1)
        sizes = [tuple(min(int(v), full) for v, full in
                       zip(m.get('img_shape', (full_h, full_w))[:2], (full_h, full_w)))
                 for m in metas]
        # images that share a canvas run together: their own pixels on zeros, so an image's
        # detections never depend on the others or on the batch padding
        groups: Dict[Tuple[int, int], List[int]] = OrderedDict()
        frames = self.frame_tokens(sizes)
        for i, (h, w) in enumerate(sizes):
            side = int(frames[i]) * TOKEN_SIZE
            groups.setdefault((side, side) if self.frame_size is not None else (h, w),
                              []).append(i)
        results: List[Optional[InstanceData]] = [None] * b
        for (ch, cw), idx in groups.items():
            canvas = images.new_zeros(len(idx), images.shape[1], ch, cw)
            for k, i in enumerate(idx):
                h, w = sizes[i]
                canvas[k, :, :h, :w] = images[i, :, :h, :w]
            index = torch.tensor(idx, device=images.device)
            mask = query_mask[index] if query_mask is not None else None
            out = self._run_canvas(canvas, [sizes[i] for i in idx], queries[index], mask,
                                   with_objectness=cfg.score_mode != 'class')
            boxes_px = boxes_to_pixels(out['boxes'], out['frames'])
            objectness = out.get('objectness')
            for k, i in enumerate(idx):
                scores = token_scores(out['logits'][k], None if objectness is None
                                      else objectness[k], cfg.score_mode)
                if mask is not None:  # padded queries never produce a detection
                    scores = scores.masked_fill(~mask[k].bool()[None, :], float('-inf'))
                h, w = sizes[i]
                scores = scores.masked_fill(~self._inside(out['grid_hw'], (h, w), scores.device)
                                            [:, None], float('-inf'))
                boxes, kept_scores, labels = select_detections(scores, boxes_px[k], cfg)
                meta = metas[i]
                if rescale:
                    boxes = rescale_boxes(boxes, meta.get('scale_factor'),
                                          meta.get('ori_shape', (h, w)))
                else:
                    boxes = rescale_boxes(boxes, None, (h, w))
                results[i] = InstanceData(bboxes=boxes, scores=kept_scores, labels=labels)
        return results

    @staticmethod
    def _inside(grid_hw: Tuple[int, int], valid_hw: Tuple[int, int], device) -> Tensor:
        """``(H*W,)`` True for the tokens of the image (False for frame padding)."""
        return valid_token_mask([valid_hw], grid_hw, device)[0].reshape(-1)

    def _queries_for(self, vocabulary: Optional[VocabSpec]) -> Tensor:
        return self.encode_vocabulary(self.test_vocabulary if vocabulary is None else vocabulary)

    @torch.no_grad()
    def embed_image_queries(self, image: Tensor, boxes_xyxy: Tensor) -> Tuple[Tensor, List[ImageQuery]]:
        """One-shot queries from exemplar boxes on one query image.

        Args:
            image: ``(3, H, W)`` or ``(1, 3, H, W)`` normalised query image.
            boxes_xyxy: ``(M, 4)`` exemplar boxes in that image's pixels.

        Returns:
            ``(M, E)`` query embeddings and, per exemplar, the chosen token
            (its index, predicted box in the image's pixels, and IoU).
        """
        if image.dim() == 3:
            image = image.unsqueeze(0)
        boxes_xyxy = boxes_xyxy.reshape(-1, 4).to(image.device, torch.float32)
        size = tuple(image.shape[-2:])
        out = self._run_canvas(image, [size])
        inside = self._inside(out['grid_hw'], size, image.device)
        pred_px = boxes_to_pixels(out['boxes'][0], out['frames'][0])[inside]
        embeds = out['class_embeds'][0][inside]
        tokens = inside.nonzero().flatten()
        chosen = []
        for box in boxes_xyxy:
            c = select_query_embedding(embeds, pred_px, box, self.query_iou_ratio)
            chosen.append(c._replace(index=int(tokens[c.index])))
        return torch.stack([c.embedding for c in chosen]), chosen


def _valid_sizes(data_samples) -> Optional[List[Tuple[int, int]]]:
    if not data_samples:
        return None
    sizes = []
    for sample in data_samples:
        shape = sample.metainfo.get('img_shape') if hasattr(sample, 'metainfo') else None
        if shape is None:
            return None
        sizes.append((int(shape[0]), int(shape[1])))
    return sizes


__all__ = ['OwlDetector', 'valid_token_mask', 'frame_side_tokens', 'stack_queries']
