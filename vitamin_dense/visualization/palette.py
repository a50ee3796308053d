"""Deterministic, well-separated colours for classes.

``palette(n)`` gives colour ``i`` independently of ``n`` (so adding a class
never recolours the others): hues advance by the golden angle, which keeps
consecutive colours far apart on the hue circle, and saturation / value cycle
through three levels so that colours sharing a hue region still differ in
brightness. ``color_for_name`` instead hashes the name, for colours that stay
the same across different vocabularies. All colours are RGB ``uint8`` triples.
"""
from __future__ import annotations

import colorsys
import hashlib
from typing import List, Sequence, Tuple

Color = Tuple[int, int, int]

GOLDEN_RATIO_CONJUGATE = 0.6180339887498949
# (saturation, value) levels cycled every full pass of hues.
_TONES: Tuple[Tuple[float, float], ...] = ((0.85, 0.95), (0.55, 0.80), (0.95, 0.62))
# Colour of pixels assigned to no class (below the threshold): neutral gray.
NO_CLASS_COLOR: Color = (128, 128, 128)


def palette_color(index: int) -> Color:
    """Colour of class ``index`` (deterministic, independent of the class count)."""
    if index < 0:
        return NO_CLASS_COLOR
    hue = (0.02 + index * GOLDEN_RATIO_CONJUGATE) % 1.0
    saturation, value = _TONES[(index // 5) % len(_TONES)]
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def palette(n: int) -> List[Color]:
    """The first ``n`` palette colours."""
    if n < 0:
        raise ValueError(f'palette size must be non-negative, got {n}')
    return [palette_color(i) for i in range(n)]


def color_for_name(name: str) -> Color:
    """A colour derived from a class name (stable across vocabularies and runs)."""
    digest = hashlib.sha256(name.strip().lower().encode('utf-8')).digest()
    hue = int.from_bytes(digest[:4], 'big') / 2 ** 32
    saturation, value = _TONES[digest[4] % len(_TONES)]
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def class_colors(names: Sequence[str], by: str = 'index') -> List[Color]:
    """Colours for a list of class names, ``by='index'`` (most distinct) or ``'name'``."""
    if by == 'index':
        return palette(len(names))
    if by == 'name':
        return [color_for_name(n) for n in names]
    raise ValueError(f"colour scheme must be 'index' or 'name', got {by!r}")


def text_color_for(background: Color) -> Color:
    """Black or white, whichever reads better on ``background`` (relative luminance)."""
    r, g, b = (c / 255.0 for c in background)
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (0, 0, 0) if luminance > 0.55 else (255, 255, 255)


__all__ = ['Color', 'NO_CLASS_COLOR', 'palette', 'palette_color', 'color_for_name',
           'class_colors', 'text_color_for']
