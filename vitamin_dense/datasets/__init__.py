"""Data sets and transforms (through mmdet / mmseg pipelines), synthetic data, vocabularies."""
