"""A trained Sliding F-ViT behind :class:`~vitamin_dense.apis.Detector`.

:class:`FViTDetect` gives an mmdet :class:`~vitamin_dense.models.fvit.SlidingFViT`
the small interface the detector API drives (``backbone``, ``detect`` with a
per-image vocabulary and a test config), so that ``Detector`` and
``demo/detect.py`` take F-ViT checkpoints like OWL ones. F-ViT scores named
classes only: exemplar (one-shot) queries need an OWL checkpoint. Unlike the
OWL path this one needs mmdet and mmcv's RoIAlign.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError


class FViTDetect(nn.Module):
    """``detect(images, metas, test_cfg=...)`` over an mmdet two-stage F-ViT."""

    def __init__(self, model: nn.Module):
        super().__init__()
        from mmengine.model import revert_sync_batchnorm
        self.model = revert_sync_batchnorm(model)  # SyncBN needs a process group
        self._vocabulary = None

    @property
    def backbone(self):
        return self.model.backbone

    def embed_image_queries(self, *args, **kwargs):
        from .detector import QueryError
        raise QueryError('an F-ViT checkpoint detects named classes only: give --vocab (one-shot '
                         'exemplar queries need an OWL detector checkpoint)')

    @torch.no_grad()
    def detect(self, images: Tensor, metas: Sequence[dict], queries: Optional[Tensor] = None,
               test_cfg: Optional[dict] = None, **unused) -> List:
        """Detections per image (``bboxes`` in original pixels, ``scores``, ``labels``).

        ``test_cfg``: ``score_thr`` and ``max_per_img`` cut the RoI head's output.
        """
        from mmdet.structures import DetDataSample
        if queries is not None:
            self.embed_image_queries()
        vocabulary = metas[0].get('vocabulary')
        if vocabulary is None or any(m.get('vocabulary') != vocabulary for m in metas):
            raise ConfigError('F-ViT needs one vocabulary for the whole batch')
        if vocabulary != self._vocabulary:  # the head re-encodes only on a change
            self.model.set_vocabulary(vocabulary)
            self._vocabulary = vocabulary
        pad = tuple(int(v) for v in images.shape[-2:])
        samples = []
        for meta in metas:
            sample = DetDataSample()
            sample.set_metainfo(dict(img_shape=tuple(meta['img_shape']),
                                     ori_shape=tuple(meta['ori_shape']),
                                     scale_factor=tuple(meta['scale_factor']),
                                     batch_input_shape=pad, pad_shape=pad))
            samples.append(sample)
        cfg = dict(test_cfg or {})
        outs = self.model.predict(images, samples, rescale=True)
        results = []
        for out in outs:
            inst = out.pred_instances
            keep = inst.scores >= float(cfg.get('score_thr', 0.0))
            inst = inst[keep]
            order = inst.scores.argsort(descending=True)[:int(cfg.get('max_per_img', 100))]
            results.append(inst[order])
        return results


def is_fvit_config(model_cfg: dict) -> bool:
    return str(model_cfg.get('type', '')).split('.')[-1] == 'SlidingFViT'


__all__ = ['FViTDetect', 'is_fvit_config']
