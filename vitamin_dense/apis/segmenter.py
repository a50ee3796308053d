"""Open-vocabulary semantic segmentation in a few lines.

    from vitamin_dense.apis import Segmenter
    seg = Segmenter('ViTamin-L-336', weights='datacomp1b', device='cuda')
    result = seg('photo.jpg', 'cat, kitten; dog; grass')   # path, numpy RGB or PIL
    result.shares                       # {'cat': 0.41, 'dog': 0.2, 'grass': 0.39}
    result.save_overlay('overlay.png')
    result = seg('photo.jpg', 'sofa,floor')   # image features reused: only text is new

The segmenter is built once (weights load once) and called many times.
Images larger than ``max_side`` are segmented on a shrunk copy and the labels
mapped back to the full size (logged once per image); per-image features are
cached by content, so changing the vocabulary or the threshold for the same
image does not run the image tower again.
"""
from __future__ import annotations

import logging
from typing import Iterable, List, Optional, Sequence, Union

import torch

from ..errors import ConfigError, VitaminDenseError
from ..models.training_free import check_threshold
from ..text import Vocabulary, parse_vocabulary
from ..text.vocabulary import VocabSpec
from ..utils.image_io import (ImageLike, describe_source, read_image, resize_to_max_side)
from ..utils.precision import check_precision, inference_autocast
from .predictor import PreparedImage, Predictor, build_predictor, content_key
from .results import SegmentationResult

logger = logging.getLogger(__name__)

_UNSET = object()
DEFAULT_MAX_SIDE = 2048


def resolve_device(device: Union[None, str, torch.device] = 'auto') -> torch.device:
    """``'auto'`` -> CUDA when available, else CPU; anything else is checked."""
    if device is None or device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device '{device}': use cpu, cuda, cuda:N or auto") from exc
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' requested but CUDA is not available here; "
                          'use --device cpu')
    if dev.type == 'cuda' and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device '{device}' does not exist ({torch.cuda.device_count()} "
                          'CUDA devices)')
    return dev


class Segmenter:
    """Build once, call many times: image + vocabulary -> :class:`SegmentationResult`.

    Args:
        model: open_clip name of the ViTamin variant (``'ViTamin-L-336'``...).
        weights: pretrained tag (``'datacomp1b'``), ``'hf-hub:org/repo'``, a
            local ``.safetensors`` / ``.pt`` file, or None for random init.
        device: ``'auto'`` (CUDA if available), ``'cpu'``, ``'cuda'``, ``'cuda:1'``.
        stride: sliding-window stride in px, a multiple of 16 (default: half
            the window).
        templates: prompt templates, ``'vild'`` (14), ``'imagenet'`` (80),
            ``'single'`` or a list of strings with ``{}``.
        threshold: default "none of these" probability threshold (None: every
            pixel gets a class).
        max_side: images whose longer side exceeds this are segmented on a
            shrunk copy (area interpolation) and the labels mapped back to the
            original size; bounds time and memory for huge inputs. None: never.
        feature_cache_size: images whose features are kept (LRU).
        memory_budget_mb: bounds the windows run at once (default: the predictor's own,
            2048 MB training-free, the config's value for a trained model).
        progress: progress bars for many windows / many images.
        precision: ``'fp32'``, or ``'bf16'`` for bfloat16 autocast (GPUs; see
            :mod:`vitamin_dense.utils.precision`).
        predictor: a registered predictor name (``'training-free'``) or a
            ready :class:`~vitamin_dense.apis.predictor.Predictor` object.
        **predictor_options: passed to the predictor factory (e.g. a trained
            model's ``config`` / ``checkpoint``).
    """

    def __init__(self, model: str = 'ViTamin-L-336', weights: Optional[str] = 'datacomp1b',
                 device: Union[None, str, torch.device] = 'auto', stride: Optional[int] = None,
                 templates: Union[str, Sequence[str]] = 'vild', threshold: Optional[float] = None,
                 max_side: Optional[int] = DEFAULT_MAX_SIDE, feature_cache_size: int = 8,
                 memory_budget_mb: Optional[float] = None, progress: bool = False,
                 predictor: Union[str, Predictor] = 'training-free', precision: str = 'fp32',
                 **predictor_options):
        if max_side is not None and int(max_side) < 16:
            raise ConfigError(f'max_side must be at least 16 px (or None), got {max_side}')
        self.device = resolve_device(device)
        self.precision = check_precision(precision)
        self.threshold = check_threshold(threshold)
        self.max_side = int(max_side) if max_side is not None else None
        self.progress = progress
        if isinstance(predictor, str):
            if memory_budget_mb is not None:  # else each predictor's own default / config's
                predictor_options['memory_budget_mb'] = memory_budget_mb
            predictor = build_predictor(
                predictor, model=model, weights=weights, device=self.device, stride=stride,
                templates=templates, feature_cache_size=feature_cache_size, progress=progress,
                **predictor_options)
        elif predictor_options:
            raise ConfigError('predictor options were given together with a ready predictor')
        if not isinstance(predictor, Predictor):
            raise ConfigError(f'{type(predictor).__name__} is not a predictor: it needs '
                              '`name`, `tasks` and `predict(images, vocabulary, threshold)`')
        self.predictor = predictor

    # ---------------------------------------------------------------- inputs
    def prepare(self, image: ImageLike) -> PreparedImage:
        """Read ``image`` and shrink it to ``max_side`` if needed."""
        rgb = read_image(image)
        processed = resize_to_max_side(rgb, self.max_side)
        meta = {}
        if processed.shape[:2] != rgb.shape[:2]:
            h, w = rgb.shape[:2]
            ph, pw = processed.shape[:2]
            logger.info('%s: %dx%d is larger than max_side=%d; segmenting a %dx%d copy and '
                        'mapping the labels back to %dx%d', describe_source(image), w, h,
                        self.max_side, pw, ph, w, h)
            meta['downscaled_from'] = [h, w]
        return PreparedImage(original=rgb, processed=processed, source=describe_source(image),
                             key=content_key(rgb, self.max_side), meta=meta)

    # ----------------------------------------------------------------- calls
    def __call__(self, image: ImageLike, vocabulary: VocabSpec,
                 threshold=_UNSET) -> SegmentationResult:
        """Segment one image (path, RGB numpy array or PIL image) into the vocabulary's classes."""
        vocab = parse_vocabulary(vocabulary)
        threshold = self._threshold(threshold, vocab)
        with inference_autocast(self.device, self.precision):
            return self.predictor.predict([self.prepare(image)], vocab, threshold)[0]

    segment = __call__

    def segment_batch(self, images: Iterable[ImageLike], vocabulary: VocabSpec,
                      threshold=_UNSET, on_error: str = 'raise'
                      ) -> List[Union[SegmentationResult, VitaminDenseError]]:
        """Segment several images independently (one image's result never depends on another's).

        Args:
            on_error: ``'raise'`` stops at the first unreadable image;
                ``'return'`` puts the error (a ``VitaminDenseError``) in that
                image's slot and goes on.
        """
        if on_error not in ('raise', 'return'):
            raise ConfigError(f"on_error must be 'raise' or 'return', got {on_error!r}")
        vocab = parse_vocabulary(vocabulary)
        threshold = self._threshold(threshold, vocab)
        images = list(images)
        iterator = images
        if self.progress and len(images) > 1:
            from tqdm import tqdm
            iterator = tqdm(images, desc='images', unit='img')
        results: List[Union[SegmentationResult, VitaminDenseError]] = []
        for image in iterator:
            try:
                with inference_autocast(self.device, self.precision):
                    results.append(self.predictor.predict([self.prepare(image)], vocab,
                                                          threshold)[0])
            except VitaminDenseError as exc:
                if on_error == 'raise':
                    raise
                results.append(exc)
        return results

    def _threshold(self, threshold, vocab: Vocabulary) -> Optional[float]:
        value = self.threshold if threshold is _UNSET else check_threshold(threshold)
        if value is not None and len(vocab) == 1 and getattr(self.predictor, 'name', '') == \
                'training-free':
            logger.warning('a threshold with a single class never fires (its probability is '
                           "always 1): add contrast classes such as 'background'")
        return value

    # ------------------------------------------------------------------ misc
    def clear_cache(self) -> None:
        """Forget cached image features."""
        cache = getattr(self.predictor, 'cache', None)
        if cache is not None:
            cache.clear()

    def __repr__(self) -> str:
        return (f'Segmenter(predictor={getattr(self.predictor, "name", "?")}, '
                f'device={self.device}, max_side={self.max_side})')


__all__ = ['Segmenter', 'resolve_device', 'DEFAULT_MAX_SIDE']
