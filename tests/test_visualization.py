"""Palette, label blending and legends."""
import itertools

import numpy as np
import pytest

import cv2
from vitamin_dense.visualization import (NO_CLASS_COLOR, LegendEntry, ascii_text, attach_legend,
                                         blend_labels, class_colors, color_for_name,
                                         display_size, draw_segmentation, legend_entries,
                                         line_height_for, palette, palette_color, render_legend)
from vitamin_dense.visualization.overlay import PANEL_COLOR


def _lab_distance(a, b):
    lab = cv2.cvtColor(np.array([[a, b]], np.uint8), cv2.COLOR_RGB2LAB).astype(float)
    return float(np.linalg.norm(lab[0, 0] - lab[0, 1]))


def test_palette_is_deterministic_distinct_and_prefix_stable():
    colors = palette(40)
    assert colors == palette(40)
    assert palette(10) == colors[:10]                   # adding classes never recolours
    assert len(set(colors)) == 40
    assert all(palette_color(i) == c for i, c in enumerate(colors))
    assert all(0 <= v <= 255 for c in colors for v in c)
    first = colors[:12]
    closest = min(_lab_distance(a, b) for a, b in itertools.combinations(first, 2))
    assert closest > 15, closest                        # the first dozen are well apart
    assert palette_color(-1) == NO_CLASS_COLOR
    with pytest.raises(ValueError):
        palette(-1)


def test_name_colors_are_stable():
    assert color_for_name('Cat') == color_for_name(' cat ')
    assert color_for_name('cat') != color_for_name('dog')
    assert class_colors(['a', 'b'], by='name') == [color_for_name('a'), color_for_name('b')]
    assert class_colors(['a', 'b']) == palette(2)
    with pytest.raises(ValueError):
        class_colors(['a'], by='hue')


def test_blend_labels():
    image = np.full((4, 6, 3), 100, np.uint8)
    labels = np.zeros((4, 6), np.int16)
    labels[:, 3:] = 1
    labels[0, 0] = -1
    colors = [(255, 0, 0), (0, 0, 255)]
    opaque = blend_labels(image, labels, colors, alpha=1.0, boundaries=False)
    assert tuple(opaque[1, 0]) == (255, 0, 0) and tuple(opaque[1, 5]) == (0, 0, 255)
    assert tuple(opaque[0, 0]) == (100, 100, 100)        # no class: untinted
    unchanged = blend_labels(image, labels, colors, alpha=0.0, boundaries=False)
    np.testing.assert_array_equal(unchanged, image)
    half = blend_labels(image, labels, colors, alpha=0.5, boundaries=True)
    assert tuple(half[3, 0]) == (178, 50, 50)
    assert tuple(half[3, 2]) == (255, 0, 0)              # boundary pixel: full colour
    with pytest.raises(ValueError, match='no colour'):
        blend_labels(image, labels + 5, colors)
    with pytest.raises(ValueError, match='differ in size'):
        blend_labels(image, labels[:2], colors)


def test_display_size_bounds():
    assert display_size(1, 1) == (256, 256)
    assert display_size(17, 1000) == (70, 4096)           # enlargement capped by max_side
    assert display_size(3000, 50) == (4096, 68)
    assert display_size(20000, 10000) == (4096, 2048)
    assert display_size(480, 640) == (480, 640)
    assert display_size(480, 640, max_side=None, min_side=1) == (480, 640)
    assert line_height_for(256, 256) == 18 and line_height_for(20000, 20000) == 72


def test_legend_entries_sorting_absent_none_and_overflow():
    names = ['cat', 'dog', 'grass']
    colors = palette(3)
    entries = legend_entries(names, colors, [0.2, 0.0, 0.7], no_class_share=0.1)
    assert [e.label for e in entries] == ['grass', 'cat', 'none of these']
    assert entries[0].value == '70.0%' and entries[-1].color == NO_CLASS_COLOR
    assert legend_entries(names, colors, [0.0005, 0.5, 0.4995])[-1].value == '<0.1%'
    many = [f'class {i}' for i in range(60)]
    shares = [1 / 60] * 60
    entries = legend_entries(many, palette(60), shares, max_entries=10)
    assert len(entries) == 10 and entries[-1].label == '+51 more'
    assert entries[-1].value == f'{100 * 51 / 60:.1f}%'


def test_render_legend_draws_text_and_swatches():
    entries = [LegendEntry('cat', (255, 0, 0), '50.0%'), LegendEntry('dog', (0, 255, 0))]
    panel = render_legend(entries, line_height=24)
    assert panel.shape[0] >= 2 * 24
    assert (panel == (255, 0, 0)).all(axis=-1).sum() > 50      # red swatch
    text_area = panel[:, 40:]
    assert (text_area != PANEL_COLOR).any(axis=-1).sum() > 50  # something written
    wide = render_legend(entries * 5, line_height=24, width=2000)
    assert wide.shape[1] == 2000 and wide.shape[0] < panel.shape[0] * 5


def test_attach_legend_places_the_panel_without_cropping():
    entries = [LegendEntry(f'a very long class name number {i}', palette_color(i), '1.0%')
               for i in range(8)]
    tiny = attach_legend(np.zeros((40, 60, 3), np.uint8), entries)
    assert tiny.shape[0] > 40 and tiny.shape[1] > 60       # grew to fit the legend
    tall = attach_legend(np.zeros((500, 50, 3), np.uint8), entries[:2])
    assert tall.shape[0] == 500 and tall.shape[1] > 50     # portrait: legend on the right
    with pytest.raises(ValueError):
        attach_legend(np.zeros((4, 4, 3), np.uint8), entries, side='top')


@pytest.mark.parametrize('shape', [(1, 1), (17, 1000), (3000, 50), (300, 451), (40, 20000)])
def test_draw_segmentation_readable_at_any_size(shape):
    h, w = shape
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels = (np.arange(w)[None, :] * 3 // w).repeat(h, 0).astype(np.int16)
    out = draw_segmentation(image, labels, ['sky', 'tree', 'road'])
    dh, dw = display_size(h, w)
    assert out.dtype == np.uint8 and out.ndim == 3
    assert out.shape[0] >= dh and out.shape[1] >= dw
    assert max(out.shape[:2]) <= 4096 + 1000                # no 20000 px output files
    assert out.shape[0] > dh or out.shape[1] > dw           # a legend was attached
    plain = draw_segmentation(image, labels, ['sky', 'tree', 'road'], legend=False)
    assert plain.shape[:2] == (dh, dw)


def test_draw_segmentation_checks_inputs():
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match='differ in size'):
        draw_segmentation(image, np.zeros((3, 4), int), ['a'])
    with pytest.raises(ValueError, match='RGB'):
        draw_segmentation(np.zeros((4, 4), np.uint8), np.zeros((4, 4), int), ['a'])


def test_ascii_text():
    assert ascii_text('café crème') == 'cafe creme'
    assert ascii_text('猫 cat') == '? cat'
