"""What a segmentation call returns: :class:`SegmentationResult`.

A result keeps the full-resolution label map (small: int16 per pixel) and the
low-resolution class scores it came from (``(K, h, w)``, for the training-free
model the stride-16 logits), so that per-class probability maps at any size
can be produced on demand without storing ``K x H x W`` floats.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from torch import Tensor

from ..models.training_free import (FULL_REGION, NO_CLASS, Region, check_threshold,
                                    iter_resampled, resample_scores)
from ..visualization import class_colors, draw_segmentation

ClassRef = Union[int, str]


@dataclass
class SegmentationResult:
    """Semantic segmentation of one image for one vocabulary.

    Attributes:
        labels: ``(H, W)`` class indices at the original image size; ``-1``
            (:data:`NO_CLASS`) where no class passed the threshold.
        class_names: display names, one per class, in vocabulary order.
        scores: ``(K, h, w)`` float32 class scores on CPU, low resolution.
        region: where the image lies in ``scores`` (``(top, left, bottom,
            right)`` fractions of its extent).
        pixel_counts: ``(K + 1,)`` counts, ``[no class, class 0, class 1, ...]``.
        scores_are_logits: ``scores`` are logits (softmax gives probabilities)
            rather than probabilities.
        threshold: the "none of these" threshold used, if any.
        image: the RGB ``uint8`` image (for :meth:`overlay`); may be None.
        source: the image's path or a short description.
        meta: model, weights, stride, windows, processed size, timings ...
    """

    labels: np.ndarray
    class_names: List[str]
    scores: Tensor
    region: Region = FULL_REGION
    pixel_counts: Optional[np.ndarray] = None
    scores_are_logits: bool = True
    threshold: Optional[float] = None
    image: Optional[np.ndarray] = field(default=None, repr=False)
    source: str = ''
    meta: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.labels.ndim != 2:
            raise ValueError(f'labels must be (H, W), got {self.labels.shape}')
        if self.scores.dim() != 3 or self.scores.shape[0] != len(self.class_names):
            raise ValueError(f'scores {tuple(self.scores.shape)} do not match '
                             f'{len(self.class_names)} classes')
        if self.pixel_counts is None:
            flat = self.labels.reshape(-1).astype(np.int64) + 1
            self.pixel_counts = np.bincount(flat, minlength=len(self.class_names) + 1)

    # ---------------------------------------------------------------- basics
    @property
    def size(self) -> Tuple[int, int]:
        """``(H, W)`` of the image."""
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_index(self, cls: ClassRef) -> int:
        if isinstance(cls, (int, np.integer)):
            if not 0 <= int(cls) < self.num_classes:
                raise IndexError(f'class index {cls} out of range (0..{self.num_classes - 1})')
            return int(cls)
        try:
            return self.class_names.index(cls)
        except ValueError:
            raise KeyError(f"no class named '{cls}'; classes: {', '.join(self.class_names)}") \
                from None

    # ---------------------------------------------------------------- shares
    @property
    def share_list(self) -> List[float]:
        """Fraction of pixels of each class, in vocabulary order."""
        total = max(1, int(self.pixel_counts.sum()))
        return [float(c) / total for c in self.pixel_counts[1:]]

    @property
    def shares(self) -> Dict[str, float]:
        """``{class name: fraction of pixels}`` in vocabulary order."""
        return dict(zip(self.class_names, self.share_list))

    @property
    def no_class_share(self) -> float:
        """Fraction of pixels assigned to no class (only with a threshold)."""
        return float(self.pixel_counts[0]) / max(1, int(self.pixel_counts.sum()))

    def mask(self, cls: ClassRef) -> np.ndarray:
        """Boolean ``(H, W)`` mask of one class."""
        return self.labels == self.class_index(cls)

    # ---------------------------------------------------------- probabilities
    def probabilities(self, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """``(K, H, W)`` float32 class probabilities at ``size`` (default: the image size).

        This holds ``K x H x W`` floats: for very large images pass a smaller
        ``size`` or use :meth:`probability_map` for one class.
        """
        size = tuple(size) if size is not None else self.size
        up = resample_scores(self.scores, size, self.region)
        return (up.softmax(0) if self.scores_are_logits else up).numpy()

    def probability_map(self, cls: ClassRef, size: Optional[Tuple[int, int]] = None
                        ) -> np.ndarray:
        """``(H, W)`` float32 probability of one class, computed in bounded memory."""
        k = self.class_index(cls)
        size = tuple(size) if size is not None else self.size
        out = np.empty(size, dtype=np.float32)
        for r0, r1, band in iter_resampled(self.scores, size, self.region):
            probs = band.softmax(0) if self.scores_are_logits else band
            out[r0:r1] = probs[k].numpy()
        return out

    def relabel(self, threshold: Optional[float]) -> 'SegmentationResult':
        """The same result with another "none of these" threshold (no model call)."""
        from ..models.training_free import label_map
        check_threshold(threshold)
        labels, counts = label_map(self.scores, self.size, self.region, threshold,
                                   are_logits=self.scores_are_logits)
        # replace(): a subclass (panoptic / instance results) keeps its own fields
        return replace(self, labels=labels, pixel_counts=counts, threshold=threshold,
                       class_names=list(self.class_names), meta=dict(self.meta))

    # ---------------------------------------------------------------- drawing
    def colors(self, by: str = 'index') -> List[Tuple[int, int, int]]:
        return class_colors(self.class_names, by=by)

    def overlay(self, image: Optional[np.ndarray] = None, alpha: float = 0.5,
                legend: bool = True, min_side: int = 256, max_side: Optional[int] = 4096,
                colors: Optional[Sequence[Tuple[int, int, int]]] = None,
                boundaries: bool = True, title: Optional[str] = None) -> np.ndarray:
        """RGB ``uint8`` picture: class colours over the image plus a legend with shares.

        The picture is drawn between ``min_side`` and ``max_side`` pixels (see
        :func:`vitamin_dense.visualization.display_size`).
        """
        image = image if image is not None else self.image
        if image is None:
            raise ValueError('this result holds no image: pass overlay(image=...)')
        if image.shape[:2] != self.size:
            raise ValueError(f'image {image.shape[:2]} does not match the labels {self.size}')
        return draw_segmentation(image, self.labels, self.class_names, colors=colors,
                                 shares=self.share_list, alpha=alpha, min_side=min_side,
                                 max_side=max_side, legend=legend, boundaries=boundaries,
                                 title=title)

    def save_overlay(self, path: str, **kwargs) -> str:
        """Write :meth:`overlay` to ``path`` (PNG or JPEG by suffix)."""
        from ..utils.image_io import save_image
        return save_image(path, self.overlay(**kwargs))

    def save_labels(self, path: str) -> str:
        """Write the label map as a 16-bit PNG: ``0`` = no class, ``k + 1`` = class ``k``.

        A JSON file with the class names is written next to it (``.json``).
        """
        from ..utils.image_io import save_image
        if self.num_classes >= 65535:
            raise ValueError('more than 65534 classes do not fit a 16-bit label PNG')
        encoded = (self.labels.astype(np.int32) + 1).astype(np.uint16)
        save_image(path, encoded)
        with open(os.path.splitext(path)[0] + '.json', 'w', encoding='utf-8') as f:
            json.dump({'labels': {'0': 'none'} | {str(i + 1): n for i, n in
                                                   enumerate(self.class_names)},
                       **self.to_dict()}, f, indent=1)
        return path

    # ---------------------------------------------------------------- reports
    def to_dict(self) -> Dict[str, Any]:
        """A JSON-friendly summary (no arrays)."""
        return {'source': self.source, 'height': self.size[0], 'width': self.size[1],
                'classes': list(self.class_names), 'shares': self.shares,
                'no_class_share': self.no_class_share, 'threshold': self.threshold,
                'meta': {k: v for k, v in self.meta.items()
                         if isinstance(v, (str, int, float, bool, list, tuple, type(None)))}}

    def summary(self, sort: bool = True, absent: bool = False) -> str:
        """Lines ``name  share%`` (by decreasing share), plus "none of these" if any.

        Classes that cover no pixel are counted in one last line (``absent=True``
        lists them), so that a 150-class vocabulary prints what is in the image.
        """
        items = list(self.shares.items())
        if sort:
            items.sort(key=lambda kv: -kv[1])
        missing = [name for name, share in items if share <= 0]
        if not absent:
            items = [(name, share) for name, share in items if share > 0]
        if self.threshold is not None:
            items.append(('(none of these)', self.no_class_share))
        width = max([len(n) for n, _ in items] + [4])
        lines = [f'{name:<{width}}  {100 * share:6.2f}%' for name, share in items]
        if missing and not absent:
            verb = 'classes cover' if len(missing) > 1 else 'class covers'
            lines.append(f'({len(missing)} other {verb} no pixel)')
        return '\n'.join(lines)


__all__ = ['SegmentationResult', 'NO_CLASS']
