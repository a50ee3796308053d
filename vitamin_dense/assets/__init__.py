"""Bundled sample data: the CC0 sample photo of the demos (see SOURCES.md)."""
