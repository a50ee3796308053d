"""Batch images for the segmentor and pad the ground truth with them.

(Not mmseg's ``SegDataPreProcessor``: this one also pads mmdet-style instance masks.)

MMEngine's ``ImgDataPreprocessor`` moves the batch to the device, converts
BGR (how mmcv loads images) to RGB, normalises with the CLIP mean and std and
pads every image to a common size divisible by ``pad_size_divisor`` (the
padding is the mean colour, i.e. zero after normalisation). On top, as
mmdet's ``DetDataPreprocessor`` does, each data sample records
``batch_input_shape`` / ``pad_shape`` and, in training, its ground truth is
padded to the batch size: instance masks with 0, semantic maps with 255
(ignore). Works with mmdet's and mmseg's data samples (``gt_sem_seg.sem_seg``
or ``gt_sem_seg.data``) without importing either.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import ImgDataPreprocessor

from ...registry import MODELS

CLIP_MEAN = (122.7709383, 116.7460125, 104.09373615)  # OpenAI CLIP, 0-255, RGB
CLIP_STD = (68.5005327, 66.6321579, 70.32316305)


@MODELS.register_module()
class OVSegDataPreprocessor(ImgDataPreprocessor):
    """Normalise, pad and batch images; pad instance masks and semantic maps.

    Args:
        mean / std: 0-255 RGB statistics (default: CLIP's, what ViTamin uses).
        pad_size_divisor: pad the batch to a multiple of this (32: the
            pixel decoder's coarsest stride).
        pad_value: padded pixel value after normalisation.
        bgr_to_rgb: images come BGR (mmcv's loaders) and ViTamin wants RGB.
        mask_pad_value / seg_pad_value: padding of instance masks and of
            semantic maps (255: ignored by losses and metrics).
        batch_pad_size: in training, pad every batch to at least this
            ``(h, w)`` (Mask2Former's ``BatchFixedSizePad`` for large-scale
            jitter crops); None pads to the largest image of the batch.
    """

    def __init__(self,
                 mean: Optional[Sequence[float]] = CLIP_MEAN,
                 std: Optional[Sequence[float]] = CLIP_STD,
                 pad_size_divisor: int = 32,
                 pad_value: float = 0,
                 bgr_to_rgb: bool = True,
                 mask_pad_value: int = 0,
                 seg_pad_value: int = 255,
                 batch_pad_size: Optional[Sequence[int]] = None,
                 non_blocking: bool = False):
        super().__init__(mean=mean, std=std, pad_size_divisor=pad_size_divisor,
                         pad_value=pad_value, bgr_to_rgb=bgr_to_rgb, non_blocking=non_blocking)
        self.mask_pad_value = mask_pad_value
        self.seg_pad_value = seg_pad_value
        self.batch_pad_size = tuple(int(s) for s in batch_pad_size) if batch_pad_size else None

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        inputs, samples = data['inputs'], data.get('data_samples')
        if training and self.batch_pad_size is not None:
            h, w = inputs.shape[-2:]
            th, tw = max(h, self.batch_pad_size[0]), max(w, self.batch_pad_size[1])
            if (th, tw) != (h, w):
                inputs = F.pad(inputs, (0, tw - w, 0, th - h), value=self.pad_value)
        if samples is not None:
            shape = tuple(int(s) for s in inputs.shape[-2:])
            for sample in samples:
                sample.set_metainfo(dict(batch_input_shape=shape, pad_shape=shape))
                if 'img_shape' not in sample:
                    sample.set_metainfo(dict(img_shape=shape, ori_shape=shape))
                if training:
                    self._pad_gt(sample, shape)
        return dict(inputs=inputs, data_samples=samples)

    def _pad_gt(self, sample, shape) -> None:
        if 'gt_instances' in sample and 'masks' in sample.gt_instances:
            masks = sample.gt_instances.masks
            if hasattr(masks, 'pad'):  # mmdet BitmapMasks / PolygonMasks
                sample.gt_instances.masks = masks.pad(shape, pad_val=self.mask_pad_value)
            elif isinstance(masks, torch.Tensor):
                sample.gt_instances.masks = _pad_to(masks, shape, self.mask_pad_value)
        if 'gt_sem_seg' in sample:
            seg = sample.gt_sem_seg
            for key in ('sem_seg', 'data'):
                if key in seg:
                    padded = _pad_to(getattr(seg, key), shape, self.seg_pad_value)
                    # PixelData checks shapes on assignment: rebuild it
                    seg = type(seg)(metainfo=seg.metainfo, **{key: padded})
                    sample.gt_sem_seg = seg
                    break


def _pad_to(t: torch.Tensor, shape, value) -> torch.Tensor:
    h, w = t.shape[-2:]
    if (h, w) == tuple(shape):
        return t
    return F.pad(t, (0, shape[1] - w, 0, shape[0] - h), value=value)


__all__ = ['OVSegDataPreprocessor', 'CLIP_MEAN', 'CLIP_STD']
