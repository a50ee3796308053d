"""Panoptic segments drawn as shades of their class colour, with a legend.

A panoptic picture colours each segment: stuff in its class colour, each thing
instance in a lighter or darker shade of it, so that touching instances of a
class stay apart; the legend gives each class's instance count and share of
pixels. :func:`segments_from_panoptic_ids` turns mmdet's encoding (``label +
instance * offset``, ``label == num_classes`` void) into the segment list.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .overlay import LegendEntry, attach_legend, blend_labels, display_size, resize_for_display
from .palette import Color, class_colors

Segment = Dict[str, Any]  # label, isthing, area (pixels), optional score / name


def shade(color: Sequence[int], segment: Segment, segments: Sequence[Segment]) -> Color:
    """The class colour, lightened / darkened per instance so touching instances differ."""
    if not segment['isthing']:
        return tuple(int(c) for c in color)  # type: ignore[return-value]
    same = [s for s in segments if s['label'] == segment['label'] and s['isthing']]
    k = next(i for i, s in enumerate(same) if s is segment)
    factor = 1.0 + 0.35 * (((k % 2) * 2 - 1) * ((k + 1) // 2) / max(1, len(same)))
    return tuple(int(np.clip(c * factor, 0, 255)) for c in color)  # type: ignore[return-value]


def draw_panoptic(image: np.ndarray, segment_map: np.ndarray, segments: Sequence[Segment],
                  class_names: Sequence[str], colors: Optional[Sequence[Color]] = None,
                  alpha: float = 0.5, min_side: int = 256, max_side: Optional[int] = 4096,
                  legend: bool = True, boundaries: bool = True,
                  title: Optional[str] = None) -> np.ndarray:
    """Overlay panoptic segments on ``image`` (RGB uint8).

    Args:
        segment_map: ``(H, W)`` index into ``segments`` (``-1``: no segment).
        segments: one dict per segment with ``label`` (into ``class_names``),
            ``isthing`` and ``area``.
    """
    base = list(colors) if colors is not None else class_colors(class_names)
    size = display_size(*image.shape[:2], min_side=min_side, max_side=max_side)
    shown = resize_for_display(image, size)
    seg_colors = [shade(base[s['label']], s, segments) for s in segments]
    canvas = blend_labels(shown, resize_for_display(segment_map, size, labels=True),
                          seg_colors or [(0, 0, 0)], alpha=alpha, boundaries=boundaries)
    counts: Dict[int, int] = {}
    area: Dict[int, int] = {}
    for s in segments:
        counts[s['label']] = counts.get(s['label'], 0) + 1
        area[s['label']] = area.get(s['label'], 0) + int(s['area'])
    total = max(1, segment_map.size)
    entries = [LegendEntry(class_names[k] + (f' x{counts[k]}' if counts[k] > 1 else ''),
                           tuple(int(c) for c in base[k]), f'{100 * area[k] / total:.1f}%')
               for k in sorted(counts, key=lambda k: -area[k])]
    if not legend or not entries:
        return canvas
    return attach_legend(canvas, entries, title=title)


def segments_from_panoptic_ids(ids: np.ndarray, num_classes: int, offset: int = 1000
                               ) -> Tuple[np.ndarray, List[Segment]]:
    """mmdet's panoptic ids (``label + instance * offset``; ``num_classes``: void) ->
    ``(segment map, segments)`` for :func:`draw_panoptic`."""
    values, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    lut = np.full(len(values), -1, np.int32)
    segments: List[Segment] = []
    for k, (value, area) in enumerate(zip(values.tolist(), counts.tolist())):
        label = int(value) % offset
        if label >= num_classes or value < 0:
            continue
        lut[k] = len(segments)
        segments.append(dict(label=label, isthing=int(value) >= offset, area=int(area)))
    return lut[inverse.reshape(ids.shape)], segments


__all__ = ['draw_panoptic', 'segments_from_panoptic_ids', 'shade']
