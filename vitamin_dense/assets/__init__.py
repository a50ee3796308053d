"""Bundled data: the CC0 sample photo of the demos, and the LVIS / WordNet / COCO class
tables that keep OWL pseudo-negatives from naming a vocabulary class (see SOURCES.md)."""
