"""F-ViT's test-time score: detector and CLIP probabilities, geometric ensemble.

The detector's RoI head scores a box against the class text embeddings
(cosine times a learned temperature, softmax over classes and background).
The frozen CLIP map scores the same box by RoIAlign(1x1)-pooling its dense
CLIP embeddings (cosine times a fixed temperature, softmax over the same
embeddings). The two are combined per class as a weighted geometric mean,

    p = p_det ** (1 - alpha) * p_clip ** alpha     for base (trained) classes
    p = p_det ** (1 - beta)  * p_clip ** beta      for novel classes

without renormalising (as the published F-ViT and F-VLM), so the result is
a score, not a distribution. Background counts as a base class. Plain torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError


def cosine_logits(features: Tensor, class_embeddings: Tensor, temperature) -> Tensor:
    """``temperature * cos(features, class_embeddings)``: ``(N, D) x (K, D) -> (N, K)``."""
    return temperature * F.normalize(features, dim=-1) @ F.normalize(class_embeddings, dim=-1).t()


def check_exponent(name: str, value: float) -> float:
    """Ensemble exponents are weights of a geometric mean: they must lie in [0, 1]."""
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f'ensemble exponent {name}={value} must be in [0, 1] '
                          '(0: detector only, 1: CLIP only)')
    return value


def geometric_ensemble(det_probs: Tensor, clip_probs: Tensor, novel_mask: Tensor,
                       alpha: float, beta: float) -> Tensor:
    """Per-class weighted geometric mean of detector and CLIP probabilities.

    Args:
        det_probs: ``(N, K + 1)`` detector probabilities (classes, then background).
        clip_probs: ``(N, K + 1)`` CLIP probabilities over the same columns.
        novel_mask: ``(K + 1,)`` bool, True for novel classes (background: False).
        alpha: CLIP's weight for base classes.
        beta: CLIP's weight for novel classes.
    """
    if det_probs.shape != clip_probs.shape:
        raise ValueError(f'detector scores {tuple(det_probs.shape)} and CLIP scores '
                         f'{tuple(clip_probs.shape)} differ in shape')
    if novel_mask.shape != det_probs.shape[-1:]:
        raise ValueError(f'novel_mask has {novel_mask.numel()} entries for '
                         f'{det_probs.shape[-1]} score columns')
    exponent = torch.where(novel_mask.to(det_probs.device),
                           det_probs.new_tensor(beta), det_probs.new_tensor(alpha))
    return det_probs.pow(1 - exponent) * clip_probs.pow(exponent)


__all__ = ['cosine_logits', 'check_exponent', 'geometric_ensemble']
