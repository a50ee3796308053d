"""Training-free open-vocabulary semantic segmentation with the dense CLIP map.

Every stride-16 token of ViTamin, passed through ``fc_norm`` and ``proj``,
lives in CLIP's joint image-text space (ViTamin pools tokens *before* the
head, so the head is applied per token without any change to the model). The
cosine similarity of each L2-normalised token with each L2-normalised class
embedding, times CLIP's logit scale, is a per-pixel class logit:

    logits[k, y, x] = exp(logit_scale) * <clip[:, y, x] / |clip[:, y, x]|, text[k]>

Logits are bilinearly resampled to the image (pixel-centre aligned, the same
as ``F.interpolate(..., align_corners=False)``) and the label is the arg-max.
With ``threshold`` set, a pixel whose highest softmax probability is below it
gets no class ("none of these", label ``-1``; ``ignore_index`` in MMSeg
results). Softmax probabilities need at least two classes to mean anything:
with a single class, add a contrast class such as ``'background'``.

This module has two layers:

* a pure-torch functional core (:func:`dense_class_logits`,
  :func:`resample_scores`, :func:`label_map`, :func:`training_free_segment`)
  used by the Python API and reusable by trained heads;
* :class:`TrainingFreeSegmentor`, an MMEngine ``BaseModel`` so that
  ``tools/test.py`` can evaluate the baseline on MMSeg data sets
  (``predict`` returns ``SegDataSample``s with ``pred_sem_seg``).

Resampling to large images runs in bands of rows (:func:`iter_resampled`),
so a 20000 px image never holds ``K x H x W`` floats at once.
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor

from ..backbones import ViTaminBackbone, snap_stride
from ..errors import ConfigError
from ..registry import MODELS
from .fcclip.data_preprocessor import CLIP_MEAN, CLIP_STD
from ..text import TextClassifier, Vocabulary, parse_vocabulary


NO_CLASS = -1
# (top, left, bottom, right) of the image inside a score map, as fractions of
# the map's extent.
Region = Tuple[float, float, float, float]
FULL_REGION: Region = (0.0, 0.0, 1.0, 1.0)


# ------------------------------------------------------------ functional core
def normalize_clip_map(clip_map: Tensor, eps: float = 1e-6) -> Tensor:
    """L2-normalise a ``(B, E, h, w)`` dense CLIP map over ``E`` (per pixel)."""
    return clip_map / clip_map.norm(dim=1, keepdim=True).clamp_min(eps)


def dense_class_logits(clip_map: Tensor, class_embeddings: Tensor,
                       logit_scale: Union[float, Tensor], normalized: bool = False) -> Tensor:
    """Per-pixel class logits ``(B, K, h, w)``.

    Args:
        clip_map: ``(B, E, h, w)`` dense CLIP map (normalised per pixel here
            unless ``normalized``).
        class_embeddings: ``(K, E)`` L2-normalised class embeddings.
        logit_scale: CLIP's temperature as a multiplier (``exp`` of the stored
            log scale, 100 for trained CLIP models).
    """
    if clip_map.dim() != 4:
        raise ValueError(f'clip_map must be (B, E, h, w), got {tuple(clip_map.shape)}')
    if class_embeddings.dim() != 2 or class_embeddings.shape[1] != clip_map.shape[1]:
        raise ValueError(f'class embeddings {tuple(class_embeddings.shape)} do not match the '
                         f'CLIP map width {clip_map.shape[1]}')
    if not normalized:
        clip_map = normalize_clip_map(clip_map)
    emb = class_embeddings.to(device=clip_map.device, dtype=clip_map.dtype)
    return torch.einsum('behw,ke->bkhw', clip_map, emb) * logit_scale


def stride_region(image_size: Tuple[int, int], map_size: Tuple[int, int],
                  stride: int = 16) -> Region:
    """Region of an ``image_size`` image in a stride-``stride`` map covering ``ceil(size / stride)`` cells."""
    h, w = image_size
    mh, mw = map_size
    return (0.0, 0.0, h / (stride * mh), w / (stride * mw))


def _axis_grid(out_len: int, lo: float, hi: float, start: int = 0, stop: Optional[int] = None,
               device=None, dtype=torch.float32) -> Tensor:
    """Normalised (-1..1) sample positions of output pixel centres ``start..stop``."""
    stop = out_len if stop is None else stop
    idx = torch.arange(start, stop, device=device, dtype=torch.float64)
    pos = lo + (idx + 0.5) / out_len * (hi - lo)
    return (2.0 * pos - 1.0).to(dtype)


def _sample_rows(scores: Tensor, out_size: Tuple[int, int], region: Region, r0: int, r1: int
                 ) -> Tensor:
    """Bilinear samples of ``scores`` (K, h, w) at output rows ``r0..r1``: ``(K, r1 - r0, W)``."""
    top, left, bottom, right = region
    height, width = out_size
    gy = _axis_grid(height, top, bottom, r0, r1, scores.device, scores.dtype)
    gx = _axis_grid(width, left, right, 0, width, scores.device, scores.dtype)
    grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), dim=-1)[None]
    return F.grid_sample(scores[None], grid, mode='bilinear', padding_mode='border',
                         align_corners=False)[0]


def resample_scores(scores: Tensor, out_size: Tuple[int, int],
                    region: Region = FULL_REGION) -> Tensor:
    """Resample ``(K, h, w)`` (or ``(B, K, h, w)``) scores to ``out_size`` in one go.

    ``region`` is the part of the map that shows the image (fractions of its
    extent, ``(top, left, bottom, right)``); the output covers exactly that
    part. With the full region this equals ``F.interpolate(bilinear,
    align_corners=False)``.
    """
    if scores.dim() == 4:
        return torch.stack([resample_scores(s, out_size, region) for s in scores])
    return _sample_rows(scores.float(), tuple(out_size), region, 0, int(out_size[0]))


def iter_resampled(scores: Tensor, out_size: Tuple[int, int], region: Region = FULL_REGION,
                   max_band_bytes: int = 64 * 2 ** 20) -> Iterator[Tuple[int, int, Tensor]]:
    """Yield ``(row0, row1, band)`` with ``band`` = resampled ``scores[:, row0:row1]``.

    Bands are sized so one holds at most ``max_band_bytes`` (at least one row).
    """
    k = scores.shape[0]
    height, width = int(out_size[0]), int(out_size[1])
    rows = max(1, int(max_band_bytes // max(1, 4 * (k + 3) * width)))
    scores = scores.float()
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        yield r0, r1, _sample_rows(scores, (height, width), region, r0, r1)


def labels_from_scores(scores: Tensor, threshold: Optional[float] = None,
                       are_logits: bool = True) -> Tensor:
    """Arg-max labels over dim 0 of ``(K, ...)`` scores; ``-1`` where the top probability < threshold."""
    # max(dim) returns the first maximal index like argmax, and is much faster on CPU.
    top, labels = scores.max(dim=0)
    if threshold is not None:
        if are_logits:  # top softmax probability without the full softmax
            top = 1.0 / torch.exp(scores - top.unsqueeze(0)).sum(dim=0)
        labels = torch.where(top < threshold, torch.full_like(labels, NO_CLASS), labels)
    return labels


def label_dtype(num_classes: int) -> np.dtype:
    """Smallest signed integer type holding labels ``-1 .. num_classes - 1``."""
    return np.dtype(np.int16) if num_classes <= np.iinfo(np.int16).max else np.dtype(np.int32)


def label_map(scores: Tensor, out_size: Tuple[int, int], region: Region = FULL_REGION,
              threshold: Optional[float] = None, are_logits: bool = True,
              max_band_bytes: int = 64 * 2 ** 20) -> Tuple[np.ndarray, np.ndarray]:
    """Labels of a ``(K, h, w)`` score map resampled to ``out_size``, in bounded memory.

    Returns:
        ``labels``: ``(H, W)`` int16 (int32 past 32767 classes), ``-1`` = no class;
        ``counts``: ``(K + 1,)`` pixel counts, ``counts[0]`` = no class,
        ``counts[k + 1]`` = class ``k``.
    """
    check_threshold(threshold)
    k = scores.shape[0]
    height, width = int(out_size[0]), int(out_size[1])
    labels = np.empty((height, width), dtype=label_dtype(k))
    counts = np.zeros(k + 1, dtype=np.int64)
    for r0, r1, band in iter_resampled(scores, (height, width), region, max_band_bytes):
        band_labels = labels_from_scores(band, threshold, are_logits)
        labels[r0:r1] = band_labels.cpu().numpy().astype(labels.dtype, copy=False)
        counts += np.bincount(labels[r0:r1].ravel() + 1, minlength=k + 1)
    return labels, counts


def check_threshold(threshold: Optional[float]) -> Optional[float]:
    """Validate a "none of these" probability threshold (None, or in (0, 1])."""
    if threshold is None:
        return None
    threshold = float(threshold)
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f'threshold {threshold} is not a probability in (0, 1]: pixels whose '
                          'best class probability is below it get no class')
    return threshold


def training_free_segment(clip_map: Tensor, class_embeddings: Tensor,
                          logit_scale: Union[float, Tensor], image_size: Tuple[int, int],
                          threshold: Optional[float] = None, region: Optional[Region] = None,
                          stride: int = 16) -> Tuple[Tensor, Tensor]:
    """Label map and per-class probabilities at the image size (whole tensors).

    Args:
        clip_map: ``(B, E, h, w)`` dense CLIP map from the backbone (``'clip'``).
        class_embeddings: ``(K, E)`` normalised text embeddings.
        logit_scale: CLIP's logit scale as a multiplier.
        image_size: ``(H, W)`` of the images the map was computed on.
        threshold: optional "none of these" probability threshold.
        region: where the image lies in the map (default: derived from
            ``image_size``, ``stride`` and the map size).

    Returns:
        ``labels`` ``(B, H, W)`` long (``-1`` = no class) and ``probs``
        ``(B, K, H, W)``. For very large images use :func:`label_map`.
    """
    check_threshold(threshold)
    logits = dense_class_logits(clip_map, class_embeddings, logit_scale)
    region = region or stride_region(image_size, logits.shape[-2:], stride)
    up = resample_scores(logits, image_size, region)
    labels = torch.stack([labels_from_scores(u, threshold) for u in up])
    return labels, up.softmax(dim=1)


def default_stride(window: int) -> int:
    """Half the window, as a multiple of the 16 px token (FC-CLIP used a third)."""
    return snap_stride(window // 2)


# ------------------------------------------------------------------ the model
@MODELS.register_module()
class TrainingFreeSegmentor(BaseModel):
    """Dense CLIP map against text embeddings: the baseline semantic segmentor.

    Args:
        model_name / weights: the ViTamin variant and its weights (image and
            text towers come from the same checkpoint).
        vocabulary: class names (any :func:`~vitamin_dense.text.parse_vocabulary`
            form); can be changed later with :meth:`set_vocabulary` or per call.
        templates: prompt templates of the text classifier.
        stride: sliding-window stride (default: half the window).
        threshold: "none of these" probability threshold (None: always a class).
        ignore_index: the label MMSeg results use for "none of these".
        memory_budget_mb: bounds the windows run together.
        text_disk_cache: the text classifier's on-disk cache (see TextClassifier).
        data_preprocessor: default: MMEngine's ``ImgDataPreprocessor`` with
            CLIP's mean / std, BGR to RGB (MMSeg loads BGR), padded to 16 px.
    """

    def __init__(self,
                 model_name: str = 'ViTamin-L-336',
                 weights: Optional[str] = 'datacomp1b',
                 vocabulary=None,
                 templates: Union[str, Sequence[str]] = 'vild',
                 stride: Optional[int] = None,
                 threshold: Optional[float] = None,
                 ignore_index: int = 255,
                 memory_budget_mb: Optional[float] = 2048,
                 text_disk_cache: Union[None, bool, str] = None,
                 cache_dir: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='ImgDataPreprocessor', mean=CLIP_MEAN,
                                     std=CLIP_STD, bgr_to_rgb=True, pad_size_divisor=16)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = ViTaminBackbone(model_name, weights, out_levels=(), with_clip_map=True,
                                        frozen=True, memory_budget_mb=memory_budget_mb,
                                        cache_dir=cache_dir)
        stride = stride or default_stride(self.backbone.window_size)
        self.backbone.test_stride = self.backbone.train_stride = _checked_stride(
            stride, self.backbone.window_size)
        self.text_classifier = TextClassifier(model_name, weights, templates=templates,
                                              disk_cache=text_disk_cache, cache_dir=cache_dir)
        self.threshold = check_threshold(threshold)
        self.ignore_index = int(ignore_index)
        self.vocabulary: Optional[Vocabulary] = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # ----------------------------------------------------------------- set-up
    def init_weights(self) -> None:
        """Everything is pretrained; never re-initialise."""
        self._is_init = True

    @property
    def stride(self) -> int:
        return self.backbone.test_stride

    @stride.setter
    def stride(self, value: int) -> None:
        self.backbone.test_stride = self.backbone.train_stride = _checked_stride(
            value, self.backbone.window_size)

    @property
    def logit_scale(self) -> float:
        """CLIP's logit scale as a multiplier (``exp`` of the stored parameter)."""
        return float(self.text_classifier.logit_scale.exp().item())

    @property
    def class_names(self) -> List[str]:
        return self.vocabulary.names if self.vocabulary is not None else []

    def set_vocabulary(self, vocabulary) -> Vocabulary:
        """Use these classes from now on (text embeddings are cached per vocabulary)."""
        self.vocabulary = parse_vocabulary(vocabulary)
        return self.vocabulary

    def class_embeddings(self, vocabulary=None) -> Tensor:
        """``(K, E)`` normalised text embeddings of ``vocabulary`` (default: the current one)."""
        vocab = parse_vocabulary(vocabulary) if vocabulary is not None else self.vocabulary
        if vocab is None:
            raise ConfigError('no vocabulary: pass vocabulary=... to TrainingFreeSegmentor '
                              '(e.g. "cat,dog" or "dataset:ade20k") or to the call')
        return self.text_classifier.encode(vocab)

    # ---------------------------------------------------------------- compute
    @torch.no_grad()
    def extract_clip_map(self, inputs: Tensor, stride: Optional[int] = None) -> Tensor:
        """Per-pixel L2-normalised dense CLIP map ``(B, E, ceil(H/16), ceil(W/16))``."""
        clip = self.backbone(inputs, stride=stride)['clip']
        return normalize_clip_map(clip.float())

    @torch.no_grad()
    def compute_logits(self, inputs: Tensor, vocabulary=None, stride: Optional[int] = None
                       ) -> Tensor:
        """Stride-16 class logits ``(B, K, h, w)`` of normalised images."""
        clip = self.extract_clip_map(inputs, stride)
        return dense_class_logits(clip, self.class_embeddings(vocabulary), self.logit_scale,
                                  normalized=True)

    # ------------------------------------------------------------ BaseModel API
    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'tensor':
            return self.compute_logits(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'loss':
            raise ConfigError('TrainingFreeSegmentor has nothing to train: evaluate it with '
                              'tools/test.py CONFIG none, or train a segmentation head')
        raise ConfigError(f"unknown forward mode '{mode}': use 'tensor' or 'predict'")

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples=None) -> list:
        """MMSeg-style results: one ``SegDataSample`` per image with ``pred_sem_seg``.

        Labels are produced at ``ori_shape`` from the stride-16 logits in one
        resampling step (padding and test-time resizing undone, flips undone);
        "none of these" pixels get ``ignore_index``.
        """
        from mmengine.structures import PixelData
        try:
            from mmseg.structures import SegDataSample
        except ImportError as exc:  # pragma: no cover - mmseg is part of the evaluation extra
            raise ConfigError('MMSeg-style prediction needs mmsegmentation (the openmmlab '
                              'extra); use vitamin_dense.apis.Segmenter for plain inference') \
                from exc
        logits = self.compute_logits(inputs)
        in_h, in_w = inputs.shape[-2:]
        if data_samples is None:
            data_samples = [SegDataSample(metainfo=dict(ori_shape=(in_h, in_w),
                                                        img_shape=(in_h, in_w)))
                            for _ in range(inputs.shape[0])]
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            region = _valid_region(meta, (in_h, in_w), logits.shape[-2:])
            out_size = tuple(int(v) for v in meta.get('ori_shape', (in_h, in_w))[:2])
            scores = logits[i]
            if meta.get('flip', False):
                direction = meta.get('flip_direction', 'horizontal')
                scores = scores.flip(dims=(2,) if direction == 'horizontal' else (1,))
                region = _flip_region(region, direction)
            labels, _ = label_map(scores, out_size, region, self.threshold)
            pred = torch.from_numpy(labels.astype(np.int64))
            pred[pred == NO_CLASS] = self.ignore_index
            sample.set_data({'pred_sem_seg': PixelData(data=pred[None])})
            sample.set_metainfo({'classes': tuple(self.class_names)})
        return data_samples


def _checked_stride(stride: int, window: int) -> int:
    from ..backbones import check_stride
    return check_stride(int(stride), window)


def _valid_region(meta: Dict, input_size: Tuple[int, int], map_size: Tuple[int, int]) -> Region:
    """Where the (resized, unpadded) image lies in the stride-16 logit map."""
    in_h, in_w = input_size
    ext_h, ext_w = 16 * map_size[0], 16 * map_size[1]
    pad = meta.get('img_padding_size', meta.get('padding_size'))
    if pad is not None:
        left, right, top, bottom = (int(v) for v in pad)
        y0, x0, y1, x1 = top, left, in_h - bottom, in_w - right
    else:
        img_h, img_w = meta.get('img_shape', input_size)[:2]
        y0, x0, y1, x1 = 0, 0, min(int(img_h), in_h), min(int(img_w), in_w)
    return (y0 / ext_h, x0 / ext_w, y1 / ext_h, x1 / ext_w)


def _flip_region(region: Region, direction: str) -> Region:
    """The same image region after the score map is flipped (the map extent is kept)."""
    top, left, bottom, right = region
    if direction == 'horizontal':
        return (top, 1.0 - right, bottom, 1.0 - left)
    return (1.0 - bottom, left, 1.0 - top, right)


__all__ = ['NO_CLASS', 'Region', 'FULL_REGION', 'normalize_clip_map', 'dense_class_logits',
           'stride_region', 'resample_scores', 'iter_resampled', 'labels_from_scores',
           'label_dtype', 'label_map', 'check_threshold', 'training_free_segment',
           'default_stride', 'TrainingFreeSegmentor']
