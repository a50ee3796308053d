"""Synthetic panoptic data: coloured shapes (things) on textured regions (stuff).

Deterministic by seed, fast (about 100 images of 128 px per second or two), and
written in the layouts the real data sets use, so every loader, metric and
training config can be exercised offline:

.. code-block:: none

    <root>/
      images/<split>/000000.jpg                 RGB images
      annotations/panoptic_<split>.json         COCO panoptic (panopticapi format)
      annotations/panoptic_<split>/000000.png   RGB-encoded segment ids (id = R + 256 G + 256^2 B)
      annotations/instances_<split>.json        COCO instances (things only: bbox + RLE mask;
                                                ``segment_id`` links to the panoptic segment)
      annotations/semantic_<split>/000000.png   uint8 labels: things, then stuff; 255 = void
      synthetic_meta.json                       generator parameters per split (reuse marker)

Things are shape kinds (``circle``, ``square``, ``triangle``, ...); every instance
gets a random named colour (recorded as ``color`` in its annotations). Stuff are
textured regions (``sky``, ``grass``, ``water``, ...). Shapes occlude each other
in drawing order; a placement that would hide too much of an earlier shape is
rejected, so every instance keeps a visible area and all masks are exact (image
pixels and annotation pixels come from the same boolean masks). Optional void
blobs ("clutter", unlabelled: panoptic id 0, semantic 255) exercise the ignore
handling of losses and metrics.

Open-vocabulary split: ``holdout`` names classes kept out of a split (typically
the training split): they are never drawn there, and that split's class list
omits them, while the validation split keeps all classes. ``holdout='default'``
holds out :data:`DEFAULT_UNSEEN`. Category ids are fixed by the catalogue
(:func:`category_id`), so they agree across splits; the semantic PNG labels are
contiguous over the split's own class list (things first), as mmdet expects.

The generator needs only numpy, OpenCV and pycocotools (no mmdet); the mmdet /
mmseg data set classes that generate on first use live in
:mod:`vitamin_dense.datasets.synthetic_dataset`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import os.path as osp
import shutil
import zlib
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..text.vocabulary import register_builtin_vocabulary
from .errors import DatasetError

GENERATOR_VERSION = 1
META_FILE = 'synthetic_meta.json'
logger = logging.getLogger(__name__)

# Shape kinds (things) and textured regions (stuff), with our synonyms. The
# first name is the display name. Order fixes the category ids (1-based).
THING_CATALOGUE: Dict[str, Tuple[str, ...]] = {
    'circle': ('circle', 'disk', 'round shape'),
    'square': ('square', 'square shape'),
    'triangle': ('triangle', 'triangular shape'),
    'star': ('star', 'star shape', 'five-pointed star'),
    'ring': ('ring', 'annulus', 'hoop'),
    'cross': ('cross', 'plus sign'),
    'hexagon': ('hexagon', 'hexagonal shape'),
    'diamond': ('diamond', 'rhombus', 'lozenge'),
}
STUFF_CATALOGUE: Dict[str, Tuple[str, ...]] = {
    'sky': ('sky', 'blue sky', 'clouds'),
    'grass': ('grass', 'lawn', 'meadow'),
    'water': ('water', 'sea', 'lake'),
    'sand': ('sand', 'beach', 'desert'),
    'wall': ('wall', 'brick wall', 'bricks'),
    'road': ('road', 'asphalt', 'street'),
    'snow': ('snow', 'snowfield'),
}
DEFAULT_THINGS: Tuple[str, ...] = ('circle', 'square', 'triangle', 'star', 'ring', 'cross')
DEFAULT_STUFF: Tuple[str, ...] = ('sky', 'grass', 'water', 'sand', 'wall')
DEFAULT_UNSEEN: Tuple[str, ...] = ('star', 'sand')

# Named colours of thing instances (RGB).
NAMED_COLORS: Dict[str, Tuple[int, int, int]] = {
    'red': (220, 30, 30), 'green': (40, 170, 50), 'blue': (40, 70, 220),
    'yellow': (240, 220, 40), 'orange': (245, 140, 20), 'purple': (140, 50, 180),
    'pink': (245, 120, 190), 'white': (245, 245, 245), 'black': (25, 25, 25),
    'cyan': (40, 210, 220), 'brown': (130, 80, 40), 'gray': (128, 128, 128),
}

# Display colours of the classes (visualisation palette), by catalogue name.
CLASS_PALETTE: Dict[str, Tuple[int, int, int]] = {
    'circle': (220, 20, 60), 'square': (0, 0, 230), 'triangle': (255, 160, 0),
    'star': (160, 0, 200), 'ring': (0, 190, 190), 'cross': (200, 200, 0),
    'hexagon': (255, 90, 200), 'diamond': (120, 70, 20),
    'sky': (110, 170, 250), 'grass': (60, 160, 60), 'water': (20, 90, 150),
    'sand': (225, 200, 140), 'wall': (150, 60, 50), 'road': (80, 80, 80),
    'snow': (235, 235, 250),
}

ImageSize = Union[int, Tuple[int, int]]


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of one generated split (all of them shape the output)."""

    num_images: int = 100
    image_size: ImageSize = 128           # int (square) or (height, width)
    seed: int = 0
    thing_classes: Tuple[str, ...] = DEFAULT_THINGS
    stuff_classes: Tuple[str, ...] = DEFAULT_STUFF
    holdout: Tuple[str, ...] = ()         # classes never drawn in this split
    min_instances: int = 1
    max_instances: int = 4
    min_stuff: int = 1
    max_stuff: int = 3
    min_size: float = 0.15                # shape size range, fraction of min(H, W)
    max_size: float = 0.4
    min_visible: float = 0.4              # fraction of a shape that must stay visible
    void_prob: float = 0.1                # chance of one unlabelled clutter blob
    image_ext: str = 'jpg'                # 'jpg' or 'png'

    def __post_init__(self):
        object.__setattr__(self, 'thing_classes', tuple(self.thing_classes))
        object.__setattr__(self, 'stuff_classes', tuple(self.stuff_classes))
        object.__setattr__(self, 'holdout', _resolve_holdout(self.holdout))
        if isinstance(self.image_size, (list, tuple)):
            object.__setattr__(self, 'image_size', tuple(int(s) for s in self.image_size))
        self.validate()

    # -- derived -------------------------------------------------------------
    @property
    def height_width(self) -> Tuple[int, int]:
        if isinstance(self.image_size, tuple):
            return self.image_size  # type: ignore[return-value]
        return int(self.image_size), int(self.image_size)

    @property
    def split_things(self) -> Tuple[str, ...]:
        return tuple(c for c in self.thing_classes if c not in self.holdout)

    @property
    def split_stuff(self) -> Tuple[str, ...]:
        return tuple(c for c in self.stuff_classes if c not in self.holdout)

    @property
    def classes(self) -> Tuple[str, ...]:
        """Class list of the split: things first, then stuff (mmdet's order)."""
        return self.split_things + self.split_stuff

    def validate(self) -> None:
        unknown = [c for c in self.thing_classes if c not in THING_CATALOGUE] + \
            [c for c in self.stuff_classes if c not in STUFF_CATALOGUE]
        if unknown:
            raise DatasetError(
                f"unknown synthetic class(es) {', '.join(unknown)}; things: "
                f"{', '.join(THING_CATALOGUE)}; stuff: {', '.join(STUFF_CATALOGUE)}")
        bad_holdout = [c for c in self.holdout
                       if c not in self.thing_classes and c not in self.stuff_classes]
        if bad_holdout:
            raise DatasetError(f"holdout class(es) {', '.join(bad_holdout)} are not among the "
                               'synthetic classes of this split')
        if not self.split_stuff:
            raise DatasetError('the synthetic split needs at least one stuff class to fill the '
                               'background (holdout removed all of them)')
        if not self.split_things and self.max_instances > 0:
            raise DatasetError('the synthetic split has no thing class left to draw: '
                               'set max_instances=0 or hold out fewer classes')
        h, w = self.height_width
        if min(h, w) < 16:
            raise DatasetError(f'synthetic image size {self.image_size} is too small (>= 16 px)')
        if self.num_images < 1:
            raise DatasetError('num_images must be >= 1')
        if not 0 <= self.min_instances <= self.max_instances:
            raise DatasetError('need 0 <= min_instances <= max_instances')
        if not 1 <= self.min_stuff <= self.max_stuff:
            raise DatasetError('need 1 <= min_stuff <= max_stuff')
        if not 0 < self.min_size <= self.max_size <= 1:
            raise DatasetError('need 0 < min_size <= max_size <= 1')
        if self.image_ext not in ('jpg', 'png'):
            raise DatasetError(f"image_ext must be 'jpg' or 'png', not {self.image_ext!r}")

    def to_json(self) -> dict:
        d = asdict(self)
        d['image_size'] = list(self.height_width)
        for k in ('thing_classes', 'stuff_classes', 'holdout'):
            d[k] = list(d[k])
        d['generator_version'] = GENERATOR_VERSION
        return d


def _resolve_holdout(holdout) -> Tuple[str, ...]:
    if holdout is None or holdout is False:
        return ()
    if isinstance(holdout, str):
        if holdout == 'default':
            return DEFAULT_UNSEEN
        if holdout in ('', 'none'):
            return ()
        return tuple(h.strip() for h in holdout.split(',') if h.strip())
    return tuple(holdout)


# ---------------------------------------------------------------------------
# Class metadata and vocabulary
# ---------------------------------------------------------------------------
def category_id(name: str) -> int:
    """Fixed COCO category id of a catalogue class (things 1.., stuff after)."""
    names = list(THING_CATALOGUE) + list(STUFF_CATALOGUE)
    return names.index(name) + 1


def synonyms_of(name: str) -> Tuple[str, ...]:
    return THING_CATALOGUE.get(name) or STUFF_CATALOGUE[name]


def synthetic_metainfo(spec: Optional[SyntheticSpec] = None) -> dict:
    """Data set metainfo of a split: classes, thing/stuff classes, synonyms, palette."""
    spec = spec or SyntheticSpec()
    return dict(
        classes=spec.classes,
        thing_classes=spec.split_things,
        stuff_classes=spec.split_stuff,
        synonyms=tuple(synonyms_of(c) for c in spec.classes),
        palette=[CLASS_PALETTE[c] for c in spec.classes],
    )


def synthetic_vocabulary(thing_classes: Sequence[str] = DEFAULT_THINGS,
                         stuff_classes: Sequence[str] = DEFAULT_STUFF) -> List[Tuple[str, ...]]:
    """Synonym tuples of the synthetic classes (things, then stuff)."""
    return [synonyms_of(c) for c in tuple(thing_classes) + tuple(stuff_classes)]


register_builtin_vocabulary('synthetic', synthetic_vocabulary)
# the classes of a holdout='default' training split (for train_vocabulary of the metrics)
register_builtin_vocabulary('synthetic_seen', lambda: synthetic_vocabulary(
    [c for c in DEFAULT_THINGS if c not in DEFAULT_UNSEEN],
    [c for c in DEFAULT_STUFF if c not in DEFAULT_UNSEEN]))


# ---------------------------------------------------------------------------
# Textures (float32 RGB, 0..255)
# ---------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int,
                  aspect: Tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Value noise in [0, 1]: random grid upsampled with cubic interpolation."""
    gh = max(2, int(math.ceil(h / (cell * aspect[0]))) + 2)
    gw = max(2, int(math.ceil(w / (cell * aspect[1]))) + 2)
    grid = rng.random((gh, gw), dtype=np.float32)
    up = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(up, 0.0, 1.0)


def _mix(base: Sequence[float], other: Sequence[float], t: np.ndarray) -> np.ndarray:
    base = np.asarray(base, np.float32)
    other = np.asarray(other, np.float32)
    return base + (other - base) * t[..., None]


def _tex_sky(rng, h, w):
    ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None].repeat(w, 1)
    img = _mix((90, 150, 235), (170, 210, 250), ramp)
    clouds = _smooth_noise(rng, h, w, 24, (0.6, 1.6))
    clouds = np.clip((clouds - 0.55) * 3.0, 0, 1)
    return img * (1 - clouds[..., None]) + 250 * clouds[..., None]


def _tex_grass(rng, h, w):
    streaks = _smooth_noise(rng, h, w, 3, (4.0, 0.5))
    patches = _smooth_noise(rng, h, w, 20)
    img = _mix((30, 110, 30), (110, 190, 60), 0.6 * streaks + 0.4 * patches)
    return img


def _tex_water(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    wobble = 6 * _smooth_noise(rng, h, w, 16)
    waves = 0.5 + 0.5 * np.sin(yy * rng.uniform(0.5, 0.8) + 0.15 * xx + wobble + phase)
    img = _mix((15, 70, 130), (50, 140, 190), waves)
    glints = (waves > 0.97).astype(np.float32)
    return img * (1 - glints[..., None]) + 230 * glints[..., None]


def _tex_sand(rng, h, w):
    dunes = _smooth_noise(rng, h, w, 32, (0.5, 2.0))
    speckle = rng.random((h, w), dtype=np.float32)
    return _mix((200, 170, 110), (240, 215, 160), 0.7 * dunes + 0.3 * speckle)


def _tex_wall(rng, h, w):
    bh = int(rng.integers(6, 11))
    bw = 2 * bh + int(rng.integers(0, 5))
    yy, xx = np.mgrid[0:h, 0:w]
    row = yy // bh
    xs = xx + (row % 2) * (bw // 2)
    col = xs // bw
    brick_rng = rng.random((row.max() + 1, col.max() + 2), dtype=np.float32)
    shade = brick_rng[row, col]
    img = _mix((140, 55, 40), (185, 90, 65), shade)
    mortar = ((yy % bh) == 0) | ((xs % bw) == 0)
    img[mortar] = (200, 195, 185)
    return img


def _tex_road(rng, h, w):
    speckle = rng.random((h, w), dtype=np.float32)
    base = _smooth_noise(rng, h, w, 24)
    return _mix((55, 55, 58), (95, 95, 100), 0.5 * speckle + 0.5 * base)


def _tex_snow(rng, h, w):
    drift = _smooth_noise(rng, h, w, 28)
    sparkle = (rng.random((h, w), dtype=np.float32) > 0.97).astype(np.float32)
    img = _mix((200, 210, 230), (248, 248, 252), drift)
    return img * (1 - sparkle[..., None]) + 255 * sparkle[..., None]


TEXTURES: Dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    'sky': _tex_sky, 'grass': _tex_grass, 'water': _tex_water, 'sand': _tex_sand,
    'wall': _tex_wall, 'road': _tex_road, 'snow': _tex_snow,
}


# ---------------------------------------------------------------------------
# Shapes (boolean masks)
# ---------------------------------------------------------------------------
def _regular_polygon(cx, cy, radius, sides, angle, inner=None) -> np.ndarray:
    """Vertices of a regular polygon (or a star when ``inner`` is a radius ratio)."""
    pts = []
    steps = sides * 2 if inner else sides
    for i in range(steps):
        r = radius * (inner if inner and i % 2 else 1.0)
        a = angle + 2 * np.pi * i / steps
        pts.append((cx + r * np.cos(a), cy + r * np.sin(a)))
    return np.asarray(pts)


def _cross_polygon(cx, cy, radius, angle) -> np.ndarray:
    t = 0.33 * radius
    base = np.array([(-t, -radius), (t, -radius), (t, -t), (radius, -t), (radius, t), (t, t),
                     (t, radius), (-t, radius), (-t, t), (-radius, t), (-radius, -t), (-t, -t)])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return base @ rot.T + (cx, cy)


def shape_mask(kind: str, h: int, w: int, cx: float, cy: float, radius: float,
               angle: float) -> np.ndarray:
    """Boolean mask of one shape; ``radius`` is the circumscribed radius in pixels."""
    canvas = np.zeros((h, w), np.uint8)
    shift = 4  # sub-pixel vertex precision of OpenCV's rasteriser
    scale = 1 << shift

    def poly(pts):
        cv2.fillPoly(canvas, [np.round(pts * scale).astype(np.int32)], 1, lineType=cv2.LINE_8,
                     shift=shift)

    centre = (int(round(cx * scale)), int(round(cy * scale)))
    if kind == 'circle':
        cv2.circle(canvas, centre, int(round(radius * scale)), 1, -1, cv2.LINE_8, shift)
    elif kind == 'ring':
        cv2.circle(canvas, centre, int(round(radius * scale)), 1, -1, cv2.LINE_8, shift)
        cv2.circle(canvas, centre, int(round(0.55 * radius * scale)), 0, -1, cv2.LINE_8, shift)
    elif kind == 'square':
        poly(_regular_polygon(cx, cy, radius, 4, angle))
    elif kind == 'triangle':
        poly(_regular_polygon(cx, cy, radius, 3, angle))
    elif kind == 'star':
        poly(_regular_polygon(cx, cy, radius, 5, angle, inner=0.45))
    elif kind == 'cross':
        poly(_cross_polygon(cx, cy, radius, angle))
    elif kind == 'hexagon':
        poly(_regular_polygon(cx, cy, radius, 6, angle))
    elif kind == 'diamond':
        pts = _regular_polygon(0, 0, radius, 4, 0.0) * (0.6, 1.0)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        poly(pts @ rot.T + (cx, cy))
    else:  # pragma: no cover - guarded by SyntheticSpec.validate
        raise DatasetError(f'unknown shape kind {kind!r}')
    return canvas.astype(bool)


# ---------------------------------------------------------------------------
# One image
# ---------------------------------------------------------------------------
@dataclass
class Segment:
    """One panoptic segment of a generated image."""

    id: int
    category: str
    isthing: bool
    mask: np.ndarray
    color: Optional[str] = None


@dataclass
class SyntheticSample:
    image: np.ndarray                       # (H, W, 3) uint8 RGB
    segments: List[Segment] = field(default_factory=list)
    void: Optional[np.ndarray] = None       # (H, W) bool, unlabelled pixels

    def panoptic_ids(self) -> np.ndarray:
        """(H, W) uint32 segment ids, 0 = void."""
        ids = np.zeros(self.image.shape[:2], np.uint32)
        for seg in self.segments:
            ids[seg.mask] = seg.id
        return ids


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Independent stream per (seed, split, image): images don't depend on num_images."""
    return np.random.default_rng([int(seed), zlib.crc32(split.encode()), int(index)])


def _stuff_layout(rng: np.random.Generator, h: int, w: int, n: int) -> np.ndarray:
    """(H, W) int region index in [0, n): wavy bands at a random tilt."""
    if n == 1:
        return np.zeros((h, w), np.int64)
    theta = rng.uniform(-0.35, 0.35) + (np.pi / 2 if rng.random() < 0.25 else 0.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    along = xx * np.cos(theta) + yy * np.sin(theta)  # runs along the bands
    across = -xx * np.sin(theta) + yy * np.cos(theta)
    amp = rng.uniform(0.02, 0.08) * min(h, w)
    freq = rng.uniform(1.0, 3.0) * 2 * np.pi / max(h, w)
    across = across + amp * np.sin(freq * along + rng.uniform(0, 2 * np.pi))
    lo, hi = float(across.min()), float(across.max())
    # evenly spaced cuts, jittered: every band keeps at least 40% of its share
    cuts = (np.arange(1, n) + rng.uniform(-0.3, 0.3, size=n - 1)) / n
    cuts = lo + (hi - lo) * cuts
    return np.searchsorted(cuts, across.ravel()).reshape(h, w)


def _shade_shape(rng: np.random.Generator, color: Tuple[int, int, int], h: int, w: int,
                 cx: float, cy: float, radius: float) -> np.ndarray:
    """Flat colour with a soft light gradient and a little noise (looks less flat)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    light = ((xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)) / max(radius, 1.0)
    factor = 1.0 + 0.18 * np.clip(light, -1, 1) + rng.normal(0, 0.03, (h, w)).astype(np.float32)
    return np.asarray(color, np.float32) * factor[..., None]


def render_sample(spec: SyntheticSpec, split: str, index: int) -> SyntheticSample:
    """Generate image ``index`` of ``split`` (a pure function of spec, split and index)."""
    rng = _image_rng(spec.seed, split, index)
    h, w = spec.height_width
    stuff = list(spec.split_stuff)
    things = list(spec.split_things)

    # stuff regions
    hi = min(spec.max_stuff, len(stuff))
    n_stuff = int(rng.integers(min(spec.min_stuff, hi), hi + 1))
    chosen = [stuff[i] for i in rng.permutation(len(stuff))[:n_stuff]]
    layout = _stuff_layout(rng, h, w, n_stuff)
    image = np.zeros((h, w, 3), np.float32)
    stuff_masks: Dict[str, np.ndarray] = {}
    for region, name in enumerate(chosen):
        mask = layout == region
        if not mask.any():
            continue
        image[mask] = TEXTURES[name](rng, h, w)[mask]
        stuff_masks[name] = mask

    # optional unlabelled clutter (void)
    void = np.zeros((h, w), bool)
    if rng.random() < spec.void_prob:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        axes = (max(2, int(rng.uniform(0.05, 0.15) * w)), max(2, int(rng.uniform(0.05, 0.15) * h)))
        canvas = np.zeros((h, w), np.uint8)
        cv2.ellipse(canvas, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        void = canvas.astype(bool)
        image[void] = (rng.random((int(void.sum()), 3)) * 255).astype(np.float32)

    # things, drawn back to front; owner holds the index of the visible shape
    owner = np.full((h, w), -1, np.int64)
    shapes: List[Tuple[str, str, np.ndarray]] = []
    n_things = int(rng.integers(spec.min_instances, spec.max_instances + 1)) if things else 0
    min_area = max(12, int(0.004 * h * w))
    color_names = list(NAMED_COLORS)
    for _ in range(n_things):
        for _attempt in range(12):
            kind = things[int(rng.integers(len(things)))]
            color = color_names[int(rng.integers(len(color_names)))]
            radius = 0.5 * rng.uniform(spec.min_size, spec.max_size) * min(h, w)
            cx = rng.uniform(0.5 * radius, w - 0.5 * radius)
            cy = rng.uniform(0.5 * radius, h - 0.5 * radius)
            angle = rng.uniform(0, 2 * np.pi)
            mask = shape_mask(kind, h, w, cx, cy, radius, angle)
            if mask.sum() < min_area:
                continue
            trial = owner.copy()
            trial[mask] = len(shapes)
            ok = all((trial == j).sum() >= max(min_area, spec.min_visible * m.sum())
                     for j, (_, _, m) in enumerate(shapes))
            if not ok:
                continue
            owner = trial
            shapes.append((kind, color, mask))
            shaded = _shade_shape(rng, NAMED_COLORS[color], h, w, cx, cy, radius)
            image[mask] = shaded[mask]
            break

    image = np.clip(np.round(image), 0, 255).astype(np.uint8)

    # segments: stuff minus everything on top of it, then visible parts of shapes
    segments: List[Segment] = []
    covered = (owner >= 0) | void
    for name, mask in stuff_masks.items():
        visible = mask & ~covered
        if visible.any():
            segments.append(Segment(id=category_id(name), category=name, isthing=False,
                                    mask=visible))
    for j, (kind, color, _) in enumerate(shapes):
        visible = owner == j
        segments.append(Segment(id=category_id(kind) * 1000 + j + 1, category=kind,
                                isthing=True, mask=visible, color=color))
    void = ~np.logical_or.reduce([s.mask for s in segments] + [np.zeros((h, w), bool)])
    return SyntheticSample(image=image, segments=segments, void=void)


# ---------------------------------------------------------------------------
# Writing a split
# ---------------------------------------------------------------------------
def id2rgb(ids: np.ndarray) -> np.ndarray:
    """panopticapi's encoding: id = R + 256 * G + 256^2 * B."""
    ids = ids.astype(np.uint32)
    return np.stack([ids % 256, (ids // 256) % 256, (ids // 65536) % 256], -1).astype(np.uint8)


def mask_bbox(mask: np.ndarray) -> List[float]:
    """COCO ``[x, y, w, h]`` of a boolean mask (pixel-edge convention, as panopticapi)."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def split_paths(root: str, split: str) -> Dict[str, str]:
    """Where each part of a split lives under ``root``."""
    return dict(
        img_dir=osp.join(root, 'images', split),
        panoptic_json=osp.join(root, 'annotations', f'panoptic_{split}.json'),
        panoptic_dir=osp.join(root, 'annotations', f'panoptic_{split}'),
        instances_json=osp.join(root, 'annotations', f'instances_{split}.json'),
        semantic_dir=osp.join(root, 'annotations', f'semantic_{split}'),
    )


def _categories(spec: SyntheticSpec, things_only: bool = False) -> List[dict]:
    names = spec.split_things if things_only else spec.classes
    return [dict(id=category_id(n), name=n, isthing=int(n in THING_CATALOGUE),
                 supercategory='shape' if n in THING_CATALOGUE else 'region',
                 color=list(CLASS_PALETTE[n]), synonyms=list(synonyms_of(n)))
            for n in names]


def generate_split(root: str, split: str, spec: Optional[SyntheticSpec] = None,
                   progress: bool = False) -> Dict[str, str]:
    """Write one split of the synthetic data set under ``root``; returns its paths.

    Existing files of the split are replaced. Use :func:`ensure_synthetic` to
    generate only when the split is absent or was made with other parameters.
    """
    spec = spec or SyntheticSpec()
    paths = split_paths(root, split)
    for key in ('img_dir', 'panoptic_dir', 'semantic_dir'):
        if osp.isdir(paths[key]):
            shutil.rmtree(paths[key])
        os.makedirs(paths[key])
    label_of = {name: i for i, name in enumerate(spec.classes)}
    h, w = spec.height_width
    images, pan_anns, inst_anns = [], [], []
    ann_id = 0
    indices: Iterator[int] = range(spec.num_images)
    if progress:
        indices = _progress(indices, spec.num_images, f'synthetic {split}')
    for index in indices:
        sample = render_sample(spec, split, index)
        stem = f'{index:06d}'
        file_name = f'{stem}.{spec.image_ext}'
        image_id = index
        bgr = sample.image[..., ::-1]
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if spec.image_ext == 'jpg' else []
        cv2.imwrite(osp.join(paths['img_dir'], file_name), bgr, params)
        cv2.imwrite(osp.join(paths['panoptic_dir'], f'{stem}.png'),
                    id2rgb(sample.panoptic_ids())[..., ::-1])
        semantic = np.full((h, w), 255, np.uint8)
        segments_info = []
        for seg in sample.segments:
            semantic[seg.mask] = label_of[seg.category]
            info = dict(id=int(seg.id), category_id=category_id(seg.category), iscrowd=0,
                        bbox=mask_bbox(seg.mask), area=int(seg.mask.sum()))
            if seg.color:
                info['color'] = seg.color
            segments_info.append(info)
            if seg.isthing:
                ann_id += 1
                inst_anns.append(dict(id=ann_id, image_id=image_id,
                                      category_id=category_id(seg.category),
                                      segmentation=_rle(seg.mask), area=int(seg.mask.sum()),
                                      bbox=mask_bbox(seg.mask), iscrowd=0,
                                      color=seg.color, segment_id=int(seg.id)))
        cv2.imwrite(osp.join(paths['semantic_dir'], f'{stem}.png'), semantic)
        images.append(dict(id=image_id, file_name=file_name, height=h, width=w))
        pan_anns.append(dict(image_id=image_id, file_name=f'{stem}.png',
                             segments_info=segments_info))
    info = dict(description='vitamin-dense synthetic shapes', split=split, spec=spec.to_json())
    _write_json(paths['panoptic_json'], dict(info=info, images=images, annotations=pan_anns,
                                             categories=_categories(spec)))
    _write_json(paths['instances_json'], dict(info=info, images=images, annotations=inst_anns,
                                              categories=_categories(spec, things_only=True)))
    return paths


def _write_json(path: str, obj: dict) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, separators=(',', ':'))
    os.replace(tmp, path)


def _progress(it, total, desc):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return it
    return tqdm(it, total=total, desc=desc, leave=False)


def read_meta(root: str) -> dict:
    path = osp.join(root, META_FILE)
    if not osp.isfile(path):
        return {}
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _locked(root: str):
    """Exclusive lock on ``root`` so parallel workers / ranks generate once."""
    os.makedirs(root, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: no cross-process lock
        yield
        return
    with open(osp.join(root, '.generate.lock'), 'w') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_synthetic(root: str, split: str, spec: Optional[SyntheticSpec] = None,
                     progress: bool = False, force: bool = False) -> Dict[str, str]:
    """Generate ``split`` under ``root`` unless it is already there with the same spec.

    The marker ``synthetic_meta.json`` records each split's parameters. A split
    missing from it (or made with other parameters) is (re)generated; a root
    that holds files but no marker is refused rather than overwritten.
    ``force=True`` regenerates the split in any case.
    """
    spec = spec or SyntheticSpec()
    root = osp.abspath(osp.expanduser(root))
    wanted = spec.to_json()
    paths = split_paths(root, split)
    if not force and read_meta(root).get('splits', {}).get(split) == wanted and \
            _split_complete(paths):
        return paths
    with _locked(root):
        meta = read_meta(root)
        if not force and meta.get('splits', {}).get(split) == wanted and _split_complete(paths):
            return paths
        foreign = [p for p in (paths['img_dir'], paths['panoptic_json']) if osp.exists(p)]
        if foreign and not meta and not force:
            raise DatasetError(
                f'{root} holds {foreign[0]} but no {META_FILE}: it is not a synthetic data '
                'root made by vitamin-dense; point data_root elsewhere or delete it')
        previous = meta.get('splits', {}).pop(split, None)  # invalid while being rewritten
        if previous is not None and previous != wanted:
            changed = sorted(k for k in set(previous) | set(wanted)
                             if previous.get(k) != wanted.get(k))
            logger.warning('%s: split %s was made with other parameters (%s); it is rewritten, '
                           'so results computed on the old one no longer apply. Configs with '
                           'different synthetic splits need different data_root folders',
                           root, split, ', '.join(f'{k}: {previous.get(k)} -> {wanted.get(k)}'
                                                  for k in changed))
        if meta:
            _write_json(osp.join(root, META_FILE), meta)
        paths = generate_split(root, split, spec, progress=progress)
        meta.setdefault('generator', 'vitamin_dense.datasets.synthetic')
        meta.setdefault('splits', {})[split] = wanted
        _write_json(osp.join(root, META_FILE), meta)
    return paths


def _split_complete(paths: Dict[str, str]) -> bool:
    return all(osp.exists(p) for p in paths.values())
