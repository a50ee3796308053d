"""Detections drawn as boxes with labels and scores, plus a legend (OpenCV, RGB uint8).

Reuses the overlay module's sizing (:func:`display_size`: tiny images are
enlarged, huge ones shrunk) and legend panel (:func:`attach_legend`), and the
palette's class colours. Each box gets an outline in its class colour and a
filled tag ``"name 0.87"`` (text black or white, whichever reads better) above
the box, or inside it when the box touches the top edge. Boxes are drawn from
the lowest score up, so the most confident ones stay on top. Instance masks,
when given, tint their pixels in the class colour under the boxes.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .overlay import (FONT, LegendEntry, ascii_text, attach_legend, display_size,
                      line_height_for, resize_for_display)
from .palette import Color, class_colors, palette, text_color_for


def _tag_font(line_height: int):
    (_, text_h), _ = cv2.getTextSize('Hg', FONT, 1.0, 1)
    return 0.5 * line_height / max(text_h, 1), max(1, int(round(line_height / 24)))


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: Sequence[int],
               scores: Optional[Sequence[float]], class_names: Sequence[str],
               colors: Sequence[Color], thickness: Optional[int] = None,
               line_height: Optional[int] = None) -> np.ndarray:
    """Draw ``boxes`` (``(N, 4)`` xyxy in ``image`` pixels) on a copy of ``image``."""
    out = image.copy()
    h, w = out.shape[:2]
    line_height = line_height or max(12, line_height_for(h, w) - 4)
    thickness = thickness or max(1, round(max(h, w) / 400))
    scale, text_thick = _tag_font(line_height)
    order = np.argsort(np.asarray(scores)) if scores is not None else np.arange(len(boxes))
    pad = max(2, line_height // 8)
    texts, places, taken = {}, {}, []
    for i in order[::-1]:  # tag positions best-first: the best box keeps the natural spot
        x1, y1 = (int(round(float(v))) for v in boxes[i][:2])
        x1, y1 = min(max(x1, 0), w - 1), min(max(y1, 0), h - 1)
        label = int(labels[i])
        text = class_names[label] if scores is None else \
            f'{class_names[label]} {float(scores[i]):.2f}'
        text = ascii_text(text)
        (tw, th), base = cv2.getTextSize(text, FONT, scale, text_thick)
        tag_w, tag_h = tw + 2 * pad, th + base + 2 * pad
        top = y1 - tag_h if y1 - tag_h >= 0 else y1  # above the box, else inside it
        left = min(x1, max(0, w - tag_w))
        while any(left < r and left + tag_w > l and top < b and top + tag_h > t
                  for l, t, r, b in taken) and top + 2 * tag_h <= h:
            top += tag_h  # stack tags of boxes that share a corner instead of overlapping
        taken.append((left, top, left + tag_w, top + tag_h))
        texts[int(i)], places[int(i)] = (text, th), (left, top, tag_w, tag_h)
    for i in order:
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
        x1, x2 = sorted((min(max(x1, 0), w - 1), min(max(x2, 0), w - 1)))
        y1, y2 = sorted((min(max(y1, 0), h - 1), min(max(y2, 0), h - 1)))
        label = int(labels[i])
        color = tuple(int(c) for c in colors[label])
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        text, th = texts[int(i)]
        left, top, tag_w, tag_h = places[int(i)]
        cv2.rectangle(out, (left, top), (left + tag_w, top + tag_h), color, -1)
        cv2.putText(out, text, (left + pad, top + pad + th), FONT, scale, text_color_for(color),
                    text_thick, cv2.LINE_AA)
    return out


def detection_legend(class_names: Sequence[str], colors: Sequence[Color], labels: Sequence[int],
                     scores: Optional[Sequence[float]] = None, max_entries: int = 24
                     ) -> List[LegendEntry]:
    """One line per detected class: box count and best score, most detected first."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=len(class_names)) if labels.size else \
        np.zeros(len(class_names), np.int64)
    best = np.zeros(len(class_names))
    if scores is not None and labels.size:
        np.maximum.at(best, labels, np.asarray(scores, dtype=np.float64))
    order = [i for i in np.lexsort((-best, -counts)) if counts[i] > 0]
    entries = []
    for i in order:
        value = f'{counts[i]} box{"es" if counts[i] > 1 else ""}'
        if scores is not None:
            value += f', best {best[i]:.2f}'
        entries.append(LegendEntry(class_names[i], tuple(colors[i]), value))
    if not entries:
        entries.append(LegendEntry('no detection above the threshold', (128, 128, 128)))
    if len(entries) > max_entries:
        rest = entries[max_entries - 1:]
        entries = entries[:max_entries - 1] + [LegendEntry(f'+{len(rest)} more classes',
                                                           (30, 30, 30))]
    return entries


def draw_detections(image: np.ndarray, boxes: np.ndarray, labels: Sequence[int],
                    scores: Optional[Sequence[float]], class_names: Sequence[str],
                    colors: Optional[Sequence[Color]] = None, min_side: int = 256,
                    max_side: Optional[int] = 4096, legend: bool = True,
                    title: Optional[str] = None, masks: Optional[np.ndarray] = None,
                    alpha: float = 0.5) -> np.ndarray:
    """Boxes with class names and scores on ``image`` (RGB uint8), with a legend.

    Args:
        image: RGB ``uint8`` ``(H, W, 3)``; ``boxes`` are in its pixels (xyxy).
        labels: class index of each box into ``class_names``.
        scores: confidence of each box (None: names only).
        colors: one RGB colour per class (default: the palette).
        min_side / max_side: the picture is drawn at a readable size (see
            :func:`~vitamin_dense.visualization.display_size`), boxes scaled along.
        masks: ``(N, H, W)`` instance masks (bool), tinted with opacity ``alpha``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'expected an RGB image (H, W, 3), got shape {image.shape}')
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(boxes) or (scores is not None and len(scores) != len(boxes)):
        raise ValueError('boxes, labels and scores must have the same length')
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f'labels must index the {len(class_names)} class names')
    colors = list(colors) if colors is not None else class_colors(class_names)
    if len(colors) < len(class_names):
        colors += palette(len(class_names))[len(colors):]
    h, w = image.shape[:2]
    size = display_size(h, w, min_side=min_side, max_side=max_side)
    shown = resize_for_display(image, size)
    if masks is not None and len(masks):
        shown = _tint_masks(shown, masks, labels, scores, colors, size, alpha)
    scaled = boxes * np.array([size[1] / w, size[0] / h] * 2)
    canvas = draw_boxes(shown, scaled, labels, scores, class_names, colors)
    if not legend:
        return canvas
    return attach_legend(canvas, detection_legend(class_names, colors, labels, scores),
                         title=title)


def _tint_masks(shown: np.ndarray, masks: np.ndarray, labels: np.ndarray,
                scores: Optional[Sequence[float]], colors: Sequence[Color],
                size: Tuple[int, int], alpha: float) -> np.ndarray:
    """Blend each mask's class colour into ``shown`` (best instance last, on top)."""
    masks = np.asarray(masks)
    if masks.shape[0] != len(labels):
        raise ValueError(f'{masks.shape[0]} masks for {len(labels)} boxes')
    out = shown.astype(np.float32)
    order = np.argsort(np.asarray(scores)) if scores is not None else np.arange(len(labels))
    for i in order:
        mask = resize_for_display(masks[i].astype(np.uint8), size, labels=True) > 0
        out[mask] = out[mask] * (1 - alpha) + np.asarray(colors[int(labels[i])], np.float32) * alpha
    return np.rint(out).astype(np.uint8)


__all__ = ['draw_boxes', 'draw_detections', 'detection_legend']
