"""Mask overlays with a colour legend, drawn with OpenCV.

The pieces are separate so that other drawings (boxes, instance masks) reuse
them:

* :func:`display_size` / :func:`resize_for_display`: a size between
  ``min_side`` and ``max_side`` at which a picture is readable (1 px images are
  enlarged with nearest-neighbour, 20000 px ones shrunk);
* :func:`blend_labels`: tint each pixel with its class colour (pixels of no
  class stay untinted) and draw region boundaries;
* :class:`LegendEntry`, :func:`render_legend`, :func:`attach_legend`: a legend
  panel (colour swatch, name, value such as the pixel share) placed beside or
  below the picture, never over it; its text size follows the picture size;
* :func:`draw_segmentation`: all of the above for a label map.

All images are RGB ``uint8``. OpenCV's Hershey fonts are ASCII only, so
legend text is transliterated (``café`` -> ``cafe``; other characters -> ``?``).
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .palette import NO_CLASS_COLOR, Color, class_colors, palette

FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL_COLOR: Color = (30, 30, 30)
PANEL_TEXT_COLOR: Color = (240, 240, 240)
NO_CLASS_NAME = 'none of these'


@dataclass(frozen=True)
class LegendEntry:
    """One legend line: a colour swatch, a label and an optional value (e.g. ``'62.1%'``)."""

    label: str
    color: Color
    value: str = ''

    @property
    def text(self) -> str:
        return f'{self.label}  {self.value}' if self.value else self.label


# ------------------------------------------------------------------ geometry
def display_size(height: int, width: int, min_side: int = 256,
                 max_side: Optional[int] = 4096) -> Tuple[int, int]:
    """Size at which to draw a ``height`` x ``width`` picture.

    The shorter side is enlarged to ``min_side`` unless that would push the
    longer side past ``max_side``; the longer side is shrunk to ``max_side``.
    The aspect ratio is kept (each side at least 1 px).
    """
    scale = 1.0
    if min(height, width) < min_side:
        scale = min_side / min(height, width)
    if max_side and max(height, width) * scale > max_side:
        scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_for_display(image: np.ndarray, size: Tuple[int, int], labels: bool = False
                       ) -> np.ndarray:
    """Resize to ``size`` (h, w): nearest for label maps or enlargement, area for shrinking."""
    h, w = image.shape[:2]
    if (h, w) == tuple(size):
        return image
    if labels or size[0] > h or size[1] > w:
        interpolation = cv2.INTER_NEAREST
    else:
        interpolation = cv2.INTER_AREA
    if labels and image.dtype not in (np.uint8, np.uint16, np.int16, np.float32):
        # cv2.resize cannot handle int32/int64: go through int16 (labels are small).
        return cv2.resize(image.astype(np.int16), (size[1], size[0]),
                          interpolation=cv2.INTER_NEAREST).astype(image.dtype)
    return cv2.resize(image, (size[1], size[0]), interpolation=interpolation)


def line_height_for(height: int, width: int) -> int:
    """Legend line height (px) that reads well next to an ``height`` x ``width`` picture."""
    return int(min(72, max(18, round(max(height, width) / 45))))


# ------------------------------------------------------------------ blending
def blend_labels(image: np.ndarray, labels: np.ndarray, colors: Sequence[Color],
                 alpha: float = 0.5, boundaries: bool = True,
                 boundary_thickness: Optional[int] = None) -> np.ndarray:
    """Tint ``image`` (H, W, 3) with ``colors[labels]``; negative labels stay untinted.

    Boundaries between regions are drawn in the region's colour at full
    opacity, so adjacent regions stay distinguishable where colours are close.
    """
    if image.shape[:2] != labels.shape[:2]:
        raise ValueError(f'image {image.shape[:2]} and labels {labels.shape[:2]} differ in size')
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    lut = np.asarray(list(colors) + [NO_CLASS_COLOR], dtype=np.float32).reshape(-1, 3)
    idx = labels.astype(np.int64, copy=False)
    if idx.size and idx.max() >= len(colors):
        raise ValueError(f'label {int(idx.max())} has no colour ({len(colors)} colours given)')
    idx = np.where(idx < 0, len(colors), idx)
    weight = np.where(labels[..., None] < 0, 0.0, alpha).astype(np.float32)
    tint = lut[idx]
    out = image.astype(np.float32) * (1.0 - weight) + tint * weight
    if boundaries and labels.size > 1:
        edge = boundary_mask(labels, boundary_thickness or max(1, round(max(labels.shape) / 700)))
        edge &= labels >= 0
        out[edge] = tint[edge]
    return np.rint(out).astype(np.uint8)


def boundary_mask(labels: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label, dilated to ``thickness``."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    if thickness > 1:
        kernel = np.ones((thickness, thickness), np.uint8)
        edge = cv2.dilate(edge.astype(np.uint8), kernel).astype(bool)
    return edge


# -------------------------------------------------------------------- legend
def ascii_text(text: str) -> str:
    """What OpenCV's Hershey fonts can draw: accents dropped, other symbols as '?'."""
    decomposed = unicodedata.normalize('NFKD', text)
    out = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        out.append(ch if 32 <= ord(ch) < 127 else '?')
    return ''.join(out)


def _font_metrics(line_height: int) -> Tuple[float, int]:
    """Font scale and stroke thickness for a line of ``line_height`` px."""
    (_, text_h), _ = cv2.getTextSize('Hg', FONT, 1.0, 1)
    scale = 0.55 * line_height / max(text_h, 1)
    return scale, max(1, int(round(line_height / 22)))


def _entry_width(entry: LegendEntry, line_height: int) -> int:
    scale, thickness = _font_metrics(line_height)
    (text_w, _), _ = cv2.getTextSize(ascii_text(entry.text), FONT, scale, thickness)
    return int(line_height * 1.4 + text_w + line_height * 0.8)


def render_legend(entries: Sequence[LegendEntry], line_height: int, width: Optional[int] = None,
                  min_height: int = 0, title: Optional[str] = None) -> np.ndarray:
    """A legend panel: entries in as many columns as ``width`` allows (one if None)."""
    if line_height < 4:
        raise ValueError('line_height must be at least 4 px')
    entries = list(entries)
    pad = max(4, line_height // 3)
    col_w = max([_entry_width(e, line_height) for e in entries] + [line_height * 4])
    if title:
        col_w = max(col_w, _entry_width(LegendEntry(title, (0, 0, 0)), line_height))
    panel_w = max(width or 0, col_w + 2 * pad)
    ncols = max(1, (panel_w - 2 * pad) // col_w) if width else 1
    nrows = math.ceil(len(entries) / ncols) if entries else 0
    title_rows = 1 if title else 0
    panel_h = max(min_height, (nrows + title_rows) * line_height + 2 * pad)
    panel = np.empty((panel_h, panel_w, 3), np.uint8)
    panel[:] = PANEL_COLOR
    scale, thickness = _font_metrics(line_height)
    baseline_off = int(line_height * 0.72)
    if title:
        cv2.putText(panel, ascii_text(title), (pad, pad + baseline_off), FONT, scale,
                    PANEL_TEXT_COLOR, thickness, cv2.LINE_AA)
    swatch = max(3, int(line_height * 0.7))
    for k, entry in enumerate(entries):
        row, col = k % nrows, k // nrows
        x = pad + col * col_w
        y = pad + (row + title_rows) * line_height
        top = y + (line_height - swatch) // 2
        cv2.rectangle(panel, (x, top), (x + swatch - 1, top + swatch - 1),
                      tuple(int(c) for c in entry.color), thickness=-1)
        cv2.rectangle(panel, (x, top), (x + swatch - 1, top + swatch - 1), PANEL_TEXT_COLOR,
                      thickness=max(1, thickness // 2))
        cv2.putText(panel, ascii_text(entry.text), (x + int(line_height * 1.4), y + baseline_off),
                    FONT, scale, PANEL_TEXT_COLOR, thickness, cv2.LINE_AA)
    return panel


def attach_legend(image: np.ndarray, entries: Sequence[LegendEntry], side: str = 'auto',
                  line_height: Optional[int] = None, title: Optional[str] = None) -> np.ndarray:
    """Place a legend panel right of (portrait) or below (landscape) ``image``.

    The canvas grows as needed so that the legend is never cropped; unused
    area is filled with the panel colour.
    """
    h, w = image.shape[:2]
    if side == 'auto':
        side = 'below' if w >= h else 'right'
    if side not in ('below', 'right'):
        raise ValueError(f"legend side must be 'auto', 'below' or 'right', got {side!r}")
    line_height = line_height or line_height_for(h, w)
    if side == 'below':
        panel = render_legend(entries, line_height, width=w, title=title)
        width = max(w, panel.shape[1])
        canvas = np.empty((h + panel.shape[0], width, 3), np.uint8)
        canvas[:] = PANEL_COLOR
        canvas[:h, :w] = image
        canvas[h:, :panel.shape[1]] = panel
    else:
        panel = render_legend(entries, line_height, min_height=h, title=title)
        height = max(h, panel.shape[0])
        canvas = np.empty((height, w + panel.shape[1], 3), np.uint8)
        canvas[:] = PANEL_COLOR
        canvas[:h, :w] = image
        canvas[:panel.shape[0], w:] = panel
    return canvas


def legend_entries(class_names: Sequence[str], colors: Sequence[Color],
                   shares: Optional[Sequence[float]] = None, no_class_share: float = 0.0,
                   max_entries: int = 24, include_absent: bool = False) -> List[LegendEntry]:
    """Legend lines for a label map: classes by decreasing share, absent ones left out.

    With more than ``max_entries`` classes present the rest are summarised
    in one ``'+N more'`` line with their total share.
    """
    order = list(range(len(class_names)))
    if shares is not None:
        order.sort(key=lambda i: -shares[i])
        if not include_absent:
            order = [i for i in order if shares[i] > 0]
    items = [(LegendEntry(class_names[i], tuple(colors[i]),
                          _percent(shares[i]) if shares is not None else ''),
              shares[i] if shares is not None else 0.0) for i in order]
    if no_class_share > 0:
        items.append((LegendEntry(NO_CLASS_NAME, NO_CLASS_COLOR, _percent(no_class_share)),
                      no_class_share))
    if len(items) > max_entries:
        rest = items[max_entries - 1:]
        value = _percent(sum(share for _, share in rest)) if shares is not None else ''
        items = items[:max_entries - 1] + [(LegendEntry(f'+{len(rest)} more', PANEL_COLOR, value),
                                            0.0)]
    return [entry for entry, _ in items]


def _percent(share: float) -> str:
    value = 100.0 * share
    if 0 < value < 0.1:
        return '<0.1%'
    return f'{value:.1f}%'


def draw_segmentation(image: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                      colors: Optional[Sequence[Color]] = None,
                      shares: Optional[Sequence[float]] = None, alpha: float = 0.5,
                      min_side: int = 256, max_side: Optional[int] = 4096, legend: bool = True,
                      boundaries: bool = True, title: Optional[str] = None) -> np.ndarray:
    """Overlay a label map (``-1`` = no class) on ``image`` with a legend.

    Args:
        image: RGB ``uint8`` (H, W, 3).
        labels: (H, W) class indices into ``class_names``; negative = no class.
        colors: one RGB colour per class (default: :func:`palette`).
        shares: fraction of pixels per class (computed from ``labels`` if None).
        min_side / max_side: the drawing is resized into this range (see
            :func:`display_size`), so tiny images are visible and huge ones
            produce a file of sensible size.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'expected an RGB image (H, W, 3), got shape {image.shape}')
    if labels.shape[:2] != image.shape[:2]:
        raise ValueError(f'labels {labels.shape[:2]} and image {image.shape[:2]} differ in size')
    k = len(class_names)
    colors = list(colors) if colors is not None else class_colors(class_names)
    if len(colors) < k:
        colors += palette(k)[len(colors):]
    no_class_share = 0.0
    if shares is None:
        counts = np.bincount((labels.reshape(-1).astype(np.int64) + 1), minlength=k + 1)
        total = max(1, labels.size)
        shares = [c / total for c in counts[1:k + 1]]
        no_class_share = counts[0] / total
    else:
        no_class_share = max(0.0, 1.0 - float(sum(shares)))
        if no_class_share < 1e-6:
            no_class_share = 0.0
    size = display_size(*image.shape[:2], min_side=min_side, max_side=max_side)
    shown = resize_for_display(image, size)
    shown_labels = resize_for_display(labels, size, labels=True)
    canvas = blend_labels(shown, shown_labels, colors, alpha=alpha, boundaries=boundaries)
    if not legend:
        return canvas
    entries = legend_entries(class_names, colors, shares, no_class_share=no_class_share)
    return attach_legend(canvas, entries, title=title)


__all__ = ['LegendEntry', 'NO_CLASS_NAME', 'display_size', 'resize_for_display',
           'line_height_for', 'blend_labels', 'boundary_mask', 'ascii_text', 'render_legend',
           'attach_legend', 'legend_entries', 'draw_segmentation']
