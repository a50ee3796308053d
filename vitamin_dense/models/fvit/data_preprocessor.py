"""F-ViT's data preprocessor: mmdet's, plus padding every batch to a square.

The published F-ViT pads each test image (resized so that its longer side is
896) to a square after normalisation (``Pad(pad_to_square=True)`` in its
MMDetection 2.x pipeline), so the sliding windows and the FPN see a 896 x 896
input with zeros (the mean colour) below or right of the image. mmdet 3.x's
``BatchFixedSizePad`` runs in training only; ``pad_to_square`` pads in both
modes, after normalisation, and records the padded size in each sample's
``batch_input_shape`` / ``pad_shape`` (boxes are still clipped to
``img_shape`` and mapped back with ``scale_factor``).
"""
from __future__ import annotations

import torch.nn.functional as F
from mmdet.models.data_preprocessors import DetDataPreprocessor

from ...registry import MODELS, register_openmmlab_alias


@MODELS.register_module()
@register_openmmlab_alias('mmdet')
class FViTDataPreprocessor(DetDataPreprocessor):
    """:class:`~mmdet.models.data_preprocessors.DetDataPreprocessor` with ``pad_to_square``.

    Args:
        pad_to_square: pad the batch (bottom and right, with ``pad_value``) to
            a square of its longer side, in training and testing.
        **kwargs: :class:`DetDataPreprocessor` arguments.
    """

    def __init__(self, *args, pad_to_square: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.pad_to_square = bool(pad_to_square)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        if not self.pad_to_square:
            return data
        inputs, samples = data['inputs'], data['data_samples']
        h, w = inputs.shape[-2:]
        side = max(h, w)
        if (h, w) != (side, side):
            inputs = F.pad(inputs, (0, side - w, 0, side - h), value=self.pad_value)
            for sample in samples or ():
                sample.set_metainfo({'batch_input_shape': (side, side),
                                     'pad_shape': (side, side)})
        return dict(inputs=inputs, data_samples=samples)
