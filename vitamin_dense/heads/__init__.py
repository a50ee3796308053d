"""Prediction heads: OWL-ViT-style detection, FC-CLIP-style segmentation (pure PyTorch)."""
