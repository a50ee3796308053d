"""Necks for ViTamin in MMDetection / MMSegmentation configs (plain PyTorch)."""
from .norm import LayerNorm2d, build_norm
from .simple_feature_pyramid import SimpleFeaturePyramid

__all__ = ['LayerNorm2d', 'SimpleFeaturePyramid', 'build_norm']
