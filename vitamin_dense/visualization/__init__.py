"""Overlays, boxes and legends."""
from .overlay import (NO_CLASS_NAME, LegendEntry, ascii_text, attach_legend, blend_labels,
                      boundary_mask, display_size, draw_segmentation, legend_entries,
                      line_height_for, render_legend, resize_for_display)
from .palette import (NO_CLASS_COLOR, class_colors, color_for_name, palette, palette_color,
                      text_color_for)
from .boxes import detection_legend, draw_boxes, draw_detections  # noqa: E402 (uses both)
from .panoptic import draw_panoptic, segments_from_panoptic_ids  # noqa: E402

__all__ = [
    'NO_CLASS_NAME', 'LegendEntry', 'ascii_text', 'attach_legend', 'blend_labels',
    'boundary_mask', 'display_size', 'draw_segmentation', 'legend_entries', 'line_height_for',
    'render_legend', 'resize_for_display', 'NO_CLASS_COLOR', 'class_colors', 'color_for_name',
    'palette', 'palette_color', 'text_color_for', 'detection_legend', 'draw_boxes',
    'draw_detections', 'draw_panoptic', 'segments_from_panoptic_ids',
]
