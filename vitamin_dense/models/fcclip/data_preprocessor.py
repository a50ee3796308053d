"""Batch images for the segmentor and pad the ground truth with them.

(Not mmseg's ``SegDataPreProcessor``: this one also pads mmdet-style instance masks.)

MMEngine's ``ImgDataPreprocessor`` moves the batch to the device, converts
BGR (how mmcv loads images) to RGB, normalises with the CLIP mean and std and
pads every image to a common size divisible by ``pad_size_divisor`` (the
padding is the mean colour, i.e. zero after normalisation). With
``pad_to_size``, each image is first padded, *before* normalisation, to at
least that size with ``pixel_pad_value`` (0-255): the ViTamin FC-CLIP of the
paper pads every image with black to 1344 x 1344 (the size its learned
position maps are made for) in its ``forward``, before normalising. On top, as
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

from ...errors import ConfigError
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
        pad_to_size: in training and test, pad each image (right and bottom)
            to at least this ``(h, w)`` before normalisation; None: no such
            padding. ``img_shape`` keeps the unpadded size, so predictions are
            cropped to it before being resized to ``ori_shape``.
        pixel_pad_value: the value of that padding, in 0-255 pixel units
            (0: black, as the ViTamin FC-CLIP).
        unpad: at test time, the region of the padded input that predictions
            are cropped to before being resized to ``ori_shape`` (recorded as
            ``img_shape``): ``'img_shape'``, the resized image as the pipeline
            made it; or ``'long_side'``, ``round(ori_shape * s / max(ori_shape))``
            with ``s`` the padded input's longer side, the ViTamin FC-CLIP's
            rule (its inputs are resized so that the longer side is ``s``; the
            two differ by one row or column for about 0.06 % of image sizes).
            It applies only where it is that rounding difference (at most one
            pixel from ``img_shape``); an input not resized to ``s`` (e.g. a
            demo's own size) keeps its ``img_shape``.
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
                 pad_to_size: Optional[Sequence[int]] = None,
                 pixel_pad_value: float = 0,
                 unpad: str = 'img_shape',
                 non_blocking: bool = False):
        super().__init__(mean=mean, std=std, pad_size_divisor=pad_size_divisor,
                         pad_value=pad_value, bgr_to_rgb=bgr_to_rgb, non_blocking=non_blocking)
        self.mask_pad_value = mask_pad_value
        self.seg_pad_value = seg_pad_value
        self.batch_pad_size = tuple(int(s) for s in batch_pad_size) if batch_pad_size else None
        self.pad_to_size = tuple(int(s) for s in pad_to_size) if pad_to_size else None
        self.pixel_pad_value = pixel_pad_value
        if unpad not in ('img_shape', 'long_side'):
            raise ConfigError(f"unpad must be 'img_shape' or 'long_side', got {unpad!r}")
        self.unpad = unpad

    def forward(self, data: dict, training: bool = False) -> dict:
        if self.pad_to_size is not None:
            data = dict(data, inputs=self._pad_pixels(data['inputs']))
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
                elif self.unpad == 'long_side' and 'ori_shape' in sample:
                    crop = long_side_crop(sample.ori_shape, shape)
                    if all(abs(c - int(s)) <= 1 for c, s in zip(crop, sample.img_shape[:2])):
                        sample.set_metainfo(dict(img_shape=crop))
        return dict(inputs=inputs, data_samples=samples)

    def _pad_pixels(self, inputs):
        """Pad raw images (a list of ``(C, H, W)`` or a ``(B, C, H, W)`` batch) to
        at least :attr:`pad_to_size` with :attr:`pixel_pad_value`."""
        if isinstance(inputs, torch.Tensor):
            return _pad_at_least(inputs, self.pad_to_size, self.pixel_pad_value)
        return [_pad_at_least(img, self.pad_to_size, self.pixel_pad_value) for img in inputs]

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


def long_side_crop(ori_shape, padded_shape) -> tuple:
    """``(h, w)`` of the image inside a padded input, as the ViTamin FC-CLIP
    computes it: the original size scaled so that its longer side is the
    padded input's longer side, rounded (Python's ``round``)."""
    h, w = (int(s) for s in ori_shape[:2])
    scale = max(int(s) for s in padded_shape[:2]) / max(h, w)
    return round(h * scale), round(w * scale)


def _pad_at_least(t: torch.Tensor, shape, value) -> torch.Tensor:
    h, w = t.shape[-2:]
    return _pad_to(t, (max(h, shape[0]), max(w, shape[1])), value)


def _pad_to(t: torch.Tensor, shape, value) -> torch.Tensor:
    h, w = t.shape[-2:]
    if (h, w) == tuple(shape):
        return t
    return F.pad(t, (0, shape[1] - w, 0, shape[0] - h), value=value)


__all__ = ['OVSegDataPreprocessor', 'CLIP_MEAN', 'CLIP_STD', 'long_side_crop']
