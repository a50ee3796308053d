"""What a detection call returns: :class:`DetectionResult`."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..visualization import class_colors, draw_detections


@dataclass
class DetectionResult:
    """Boxes found in one image, in that image's original pixel coordinates.

    Attributes:
        boxes: ``(N, 4)`` float32 ``x1, y1, x2, y2`` in original-image pixels.
        scores: ``(N,)`` confidences in ``[0, 1]``, highest first.
        labels: ``(N,)`` indices into ``class_names``.
        class_names: one display name per query (vocabulary class or exemplar).
        image: the RGB ``uint8`` image (for :meth:`draw`); may be None.
        source: the image's path or a short description.
        meta: model, sizes, threshold, timings ...
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: List[str]
    image: Optional[np.ndarray] = field(default=None, repr=False)
    source: str = ''
    meta: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if not len(self.boxes) == len(self.scores) == len(self.labels):
            raise ValueError('boxes, scores and labels must have the same length')

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def names(self) -> List[str]:
        """Class name of each box."""
        return [self.class_names[i] for i in self.labels]

    def to_list(self) -> List[Dict[str, Any]]:
        """One dict per box: ``box`` (x1, y1, x2, y2), ``score``, ``label``, ``name``."""
        return [dict(box=[round(float(v), 2) for v in b], score=round(float(s), 4),
                     label=int(lab), name=self.class_names[lab])
                for b, s, lab in zip(self.boxes, self.scores, self.labels)]

    def to_dict(self) -> Dict[str, Any]:
        return dict(source=self.source, class_names=list(self.class_names),
                    detections=self.to_list(), meta=_jsonable(self.meta))

    def save_json(self, path: str) -> str:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(self.to_dict(), f, indent=2)
        return path

    def draw(self, image: Optional[np.ndarray] = None, legend: bool = True,
             title: Optional[str] = None, **kwargs) -> np.ndarray:
        """The image with boxes, labels, scores and a legend (RGB uint8)."""
        image = self.image if image is None else image
        if image is None:
            raise ValueError('this result holds no image: pass one to draw()')
        return draw_detections(image, self.boxes, self.labels, self.scores, self.class_names,
                               colors=class_colors(self.class_names), legend=legend,
                               title=title, **kwargs)

    def save_visualization(self, path: str, **kwargs) -> str:
        from ..utils.image_io import save_image
        return save_image(path, self.draw(**kwargs))

    def summary(self) -> str:
        """One line per box, best first."""
        if not len(self):
            return 'no detection above the threshold'
        return '\n'.join(f'{n:<20s} {s:.3f}  [{b[0]:.1f}, {b[1]:.1f}, {b[2]:.1f}, {b[3]:.1f}]'
                         for n, s, b in zip(self.names, self.scores, self.boxes))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


__all__ = ['DetectionResult']
