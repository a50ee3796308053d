"""Overlays, boxes and legends."""
