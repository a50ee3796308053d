"""The extension point of the inference API: predictors.

A :class:`~vitamin_dense.apis.Segmenter` reads images, bounds their size and
parses vocabularies; the model work is a *predictor*'s: any object with

    predict(images: Sequence[PreparedImage], vocabulary: Vocabulary,
            threshold: Optional[float]) -> List[SegmentationResult]

plus ``name`` (for logs) and ``tasks`` (what ``task=`` values it serves); an
optional ``describe() -> str`` gives the demo's one-line summary of the model.
:class:`TrainingFreePredictor` is the built-in one. A trained head plugs in by
registering a factory::

    @register_predictor('fcclip')
    def build_fcclip(config, checkpoint, device, **options) -> Predictor: ...

after which ``Segmenter(predictor='fcclip', config=..., checkpoint=...)`` (and
the demo's ``--config/--checkpoint``) build it. Predictors return one result
per image, at the *original* image size: :class:`PreparedImage` carries both
the original and the (possibly shrunk) processed pixels, and
:func:`vitamin_dense.models.training_free.label_map` maps low-resolution
scores straight to any output size in bounded memory.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple,
                    runtime_checkable)

import numpy as np
import torch
from torch import Tensor

from ..backbones import count_windows
from ..errors import ConfigError
from ..models.training_free import (TrainingFreeSegmentor, dense_class_logits, label_map,
                                    stride_region)
from ..text import Vocabulary
from .results import SegmentationResult

logger = logging.getLogger(__name__)


@dataclass
class PreparedImage:
    """An image ready for a predictor.

    Attributes:
        original: RGB ``uint8`` ``(H, W, 3)`` as read.
        processed: what the model sees: ``original`` shrunk so its longer side
            is at most the segmenter's ``max_side`` (the same array if small).
        source: path or short description.
        key: content hash of ``original`` and the processing (feature-cache key).
    """

    original: np.ndarray
    processed: np.ndarray
    source: str
    key: str
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> Tuple[int, int]:
        return int(self.original.shape[0]), int(self.original.shape[1])

    @property
    def processed_size(self) -> Tuple[int, int]:
        return int(self.processed.shape[0]), int(self.processed.shape[1])

    def to_tensor(self, mean: Sequence[float], std: Sequence[float],
                  device: torch.device) -> Tensor:
        """``(1, 3, h, w)`` float32 of ``processed``, normalised with 0-255 ``mean`` / ``std``."""
        x = torch.from_numpy(np.ascontiguousarray(self.processed)).to(device)
        x = x.permute(2, 0, 1)[None].float()
        m = torch.tensor(mean, device=device, dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(std, device=device, dtype=torch.float32).view(1, 3, 1, 1)
        return (x - m) / s


def content_key(image: np.ndarray, *extra: Any) -> str:
    """Hash of an image's pixels and shape (and ``extra`` settings)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str((image.shape, str(image.dtype)) + extra).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


@runtime_checkable
class Predictor(Protocol):
    """What :class:`~vitamin_dense.apis.Segmenter` delegates the model work to."""

    name: str
    tasks: Tuple[str, ...]

    def predict(self, images: Sequence[PreparedImage], vocabulary: Vocabulary,
                threshold: Optional[float] = None) -> List[SegmentationResult]:
        ...


PredictorFactory = Callable[..., Predictor]
_PREDICTORS: Dict[str, PredictorFactory] = {}


def register_predictor(name: str) -> Callable[[PredictorFactory], PredictorFactory]:
    """Decorator: make ``Segmenter(predictor=name, **options)`` build predictors with this factory."""
    def decorator(factory: PredictorFactory) -> PredictorFactory:
        _PREDICTORS[name] = factory
        return factory
    return decorator


def available_predictors() -> List[str]:
    return sorted(_PREDICTORS)


def build_predictor(name: str, **options) -> Predictor:
    """Build a registered predictor by name."""
    if name not in _PREDICTORS:
        raise ConfigError(f"unknown predictor '{name}'; available: "
                          f"{', '.join(available_predictors())}")
    return _PREDICTORS[name](**options)


class FeatureCache:
    """LRU cache of per-image features, bounded by entry count and bytes."""

    def __init__(self, max_items: int = 8, max_bytes: int = 1 << 30):
        self.max_items = max(0, int(max_items))
        self.max_bytes = int(max_bytes)
        self._items: 'OrderedDict[Any, Tuple[Any, int]]' = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> Optional[Any]:
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key][0]
        self.misses += 1
        return None

    def put(self, key: Any, value: Any, nbytes: int) -> None:
        if self.max_items == 0 or nbytes > self.max_bytes:
            return
        self._items[key] = (value, nbytes)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items or self.nbytes > self.max_bytes:
            self._items.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(n for _, n in self._items.values())

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class TrainingFreePredictor:
    """Dense CLIP map against the vocabulary's text embeddings (no trained head).

    The normalised CLIP map of each image is cached (keyed by image content
    and stride), so a new vocabulary for the same image costs only the text
    encoding (itself cached) and a matrix product.
    """

    name = 'training-free'
    tasks = ('semantic',)

    def __init__(self, model: TrainingFreeSegmentor, device: torch.device,
                 cache: Optional[FeatureCache] = None):
        self.model = model.to(device).eval()
        self.device = device
        self.cache = cache if cache is not None else FeatureCache()

    @property
    def stride(self) -> int:
        return self.model.stride

    def describe(self) -> str:
        """One line for logs: model, weights, window and stride."""
        backbone = self.model.backbone
        return (f'{backbone.model_name} ({backbone.weights}), training-free: window '
                f'{backbone.window_size}, stride {self.stride}')

    def clip_map(self, image: PreparedImage) -> Tuple[Tensor, Dict[str, Any]]:
        """Normalised CLIP map ``(1, E, h, w)`` of the processed image, cached."""
        key = (image.key, self.stride)
        h, w = image.processed_size
        windows = count_windows(h, w, self.model.backbone.window_size, self.stride)
        cached = self.cache.get(key)
        if cached is not None:
            return cached, {'features_cached': True, 'feature_seconds': 0.0, 'windows': windows}
        start = time.perf_counter()
        with torch.inference_mode():
            x = image.to_tensor(self.model.backbone.pixel_mean, self.model.backbone.pixel_std,
                                self.device)
            clip = self.model.extract_clip_map(x)
        seconds = time.perf_counter() - start
        self.cache.put(key, clip, clip.numel() * clip.element_size())
        return clip, {'features_cached': False, 'feature_seconds': seconds, 'windows': windows}

    def predict(self, images: Sequence[PreparedImage], vocabulary: Vocabulary,
                threshold: Optional[float] = None) -> List[SegmentationResult]:
        embeddings = self.model.class_embeddings(vocabulary)
        scale = self.model.logit_scale
        results = []
        for image in images:
            clip, info = self.clip_map(image)
            start = time.perf_counter()
            with torch.inference_mode():
                logits = dense_class_logits(clip, embeddings, scale, normalized=True)[0]
                region = stride_region(image.processed_size, logits.shape[-2:])
                labels, counts = label_map(logits, image.size, region, threshold)
            meta = dict(image.meta, predictor=self.name, model=self.model.backbone.model_name,
                        weights=self.model.backbone.weights, stride=self.stride,
                        window=self.model.backbone.window_size,
                        processed_size=list(image.processed_size),
                        labelling_seconds=time.perf_counter() - start, **info)
            results.append(SegmentationResult(
                labels=labels, class_names=list(vocabulary.names),
                scores=logits.float().cpu(), region=region, pixel_counts=counts,
                scores_are_logits=True, threshold=threshold, image=image.original,
                source=image.source, meta=meta))
        return results


@register_predictor('training-free')
def build_training_free_predictor(model: str = 'ViTamin-L-336',
                                  weights: Optional[str] = 'datacomp1b',
                                  device: Optional[torch.device] = None,
                                  stride: Optional[int] = None, templates='vild',
                                  memory_budget_mb: Optional[float] = 2048,
                                  feature_cache_size: int = 8, cache_dir: Optional[str] = None,
                                  text_disk_cache=None, progress: bool = False,
                                  **unused) -> TrainingFreePredictor:
    """Factory of the built-in predictor (the arguments of :class:`Segmenter`)."""
    if unused:
        raise ConfigError(f"the training-free predictor does not take {', '.join(sorted(unused))}"
                          ' (those need a trained model: pass --config/--checkpoint)')
    segmentor = TrainingFreeSegmentor(model, weights, templates=templates, stride=stride,
                                      memory_budget_mb=memory_budget_mb,
                                      text_disk_cache=text_disk_cache, cache_dir=cache_dir)
    segmentor.backbone.progress = progress
    segmentor.text_classifier.progress = progress
    return TrainingFreePredictor(segmentor, device or torch.device('cpu'),
                                 FeatureCache(max_items=feature_cache_size))


__all__ = ['PreparedImage', 'Predictor', 'FeatureCache', 'TrainingFreePredictor',
           'register_predictor', 'build_predictor', 'available_predictors', 'content_key']
