"""Builders shared by the detection tests (tiny, random-init, real code path)."""
from typing import Optional

import torch

from vitamin_dense.models import OwlDetector

TINY_VOCAB = 'circle,square,triangle'


def build_tiny_detector(vocabulary: Optional[str] = TINY_VOCAB, model: str = 'ViTamin-Tiny',
                        test_stride: Optional[int] = None, frozen: bool = True,
                        head: Optional[dict] = None, train_stride: Optional[int] = None,
                        **kwargs) -> OwlDetector:
    """An OwlDetector on the 64 px tiny ViTamin with a random tiny text tower."""
    torch.manual_seed(0)
    backbone = dict(model_name=model, weights=None, frozen=frozen, test_stride=test_stride,
                    train_stride=train_stride)
    text = dict(type='TextClassifier', model_name=model, weights=None, templates='single',
                disk_cache=False, progress=False)
    return OwlDetector(backbone=backbone, text_encoder=text, head=head or {},
                       vocabulary=vocabulary, **kwargs)


def zero_box_mlp(detector: OwlDetector) -> None:
    """Make every token predict exactly its own grid cell."""
    with torch.no_grad():
        detector.head.box_head.dense2.weight.zero_()
        detector.head.box_head.dense2.bias.zero_()
