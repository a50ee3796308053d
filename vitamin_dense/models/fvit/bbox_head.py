"""F-ViT's RoI box head: shared convs and FCs, then a cosine classifier over text embeddings.

A :class:`~mmdet.models.roi_heads.ConvFCBBoxHead` (published: 4 shared convs,
2 shared FCs, then one FC per branch) whose classifier is not a linear layer
over a fixed class list but the cosine similarity between the RoI's embedding
and the class text embeddings (plus a background text embedding, last), times
a learnable temperature (initialised to 50). As published, the embedding is
the output of the classification branch's FC and ReLU (so it is
non-negative), and box regression has its own FC and ReLU before ``fc_reg``;
with ``num_cls_fcs=0`` a linear layer projects the shared features instead.
The class list can change between calls: training uses the base vocabulary,
testing any vocabulary (:meth:`set_class_embeddings`). Box regression is
class-agnostic, so it does not depend on the vocabulary.

In training mode :meth:`forward` returns logits (softmax cross-entropy over
classes and background, background weighted by ``background_weight``). In
eval mode it returns probabilities: the detector's softmax, or, when the
RoIs' CLIP embeddings are given, the geometric ensemble with CLIP's scores
(:mod:`.ensemble`); :meth:`_predict_by_feat_single` therefore does not
apply another softmax.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.models.utils import empty_instances
from mmdet.structures.bbox import get_box_tensor, scale_boxes
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import MODELS, register_openmmlab_alias
from .ensemble import check_exponent, cosine_logits, geometric_ensemble


@MODELS.register_module()
@register_openmmlab_alias('mmdet')
class FViTBBoxHead(ConvFCBBoxHead):
    """Open-vocabulary box head of F-ViT.

    Args:
        embed_dim: width of the joint image-text space (the CLIP dim).
        temperature: initial classifier temperature (learned unless
            ``learn_temperature=False``); F-ViT: 50.
        background_weight: cross-entropy weight of background RoIs
            (published: 0.6 on OV-COCO, 0.9 on OV-LVIS).
        learn_background: train the background embedding (initialised from
            the text "background"); the published recipe keeps it fixed.
        clip_temperature: temperature of the CLIP scores (75 OV-COCO, 50 OV-LVIS).
        alpha: CLIP's weight in the ensemble for base classes (0.1).
        beta: CLIP's weight for novel classes (0.8 OV-COCO, 0.4 OV-LVIS).
        num_cls_fcs: FCs of the classification branch (published: 1, whose
            ReLU output is the embedding, so ``fc_out_channels`` must equal
            ``embed_dim``); 0: a linear projection of the shared features.
        num_reg_fcs: FCs of the regression branch (published: 1).
        **kwargs: :class:`ConvFCBBoxHead` arguments (``num_shared_convs=4``,
            ``num_shared_fcs=2``, ``fc_out_channels``, ``norm_cfg``, ...).
    """

    def __init__(self,
                 embed_dim: int,
                 temperature: float = 50.0,
                 learn_temperature: bool = True,
                 background_weight: float = 1.0,
                 learn_background: bool = False,
                 clip_temperature: float = 75.0,
                 alpha: float = 0.1,
                 beta: float = 0.8,
                 num_shared_convs: int = 4,
                 num_shared_fcs: int = 2,
                 conv_out_channels: int = 256,
                 fc_out_channels: int = 1024,
                 num_cls_fcs: int = 1,
                 num_reg_fcs: int = 1,
                 **kwargs):
        if not kwargs.setdefault('reg_class_agnostic', True):
            raise ConfigError('FViTBBoxHead regresses boxes class-agnostically '
                              '(its classes change at test time): set reg_class_agnostic=True')
        loss_cls = kwargs.get('loss_cls', dict(type='CrossEntropyLoss'))
        if loss_cls.get('use_sigmoid', False):
            raise ConfigError('FViTBBoxHead is trained with softmax cross-entropy over classes and '
                              'background: set loss_cls.use_sigmoid=False')
        kwargs.setdefault('num_classes', 1)  # replaced by set_class_embeddings
        if num_cls_fcs > 0 and int(fc_out_channels) != int(embed_dim):
            raise ConfigError(f'FViTBBoxHead: with num_cls_fcs={num_cls_fcs} the last FC of the '
                              f'classification branch is the embedding, so fc_out_channels '
                              f'({fc_out_channels}) must equal embed_dim ({embed_dim}); or set '
                              'num_cls_fcs=0 for a linear projection')
        super().__init__(num_shared_convs=num_shared_convs, num_shared_fcs=num_shared_fcs,
                         conv_out_channels=conv_out_channels, fc_out_channels=fc_out_channels,
                         num_cls_fcs=num_cls_fcs, num_reg_fcs=num_reg_fcs, **kwargs)
        if not self.with_cls:
            raise ConfigError('FViTBBoxHead needs its classifier (with_cls=True)')
        self.embed_dim = int(embed_dim)
        # The "classifier" is the cosine with text embeddings: the classification branch's
        # output is the embedding itself (published), or a linear projection into the
        # text space when the branch has no FC of its own.
        self.fc_cls = nn.Identity() if num_cls_fcs > 0 else nn.Linear(self.cls_last_dim,
                                                                       self.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(temperature)),
                                        requires_grad=learn_temperature)
        if learn_background:
            self.background_embedding = nn.Parameter(torch.zeros(self.embed_dim))
        else:
            self.register_buffer('background_embedding', torch.zeros(self.embed_dim))
        self.background_weight = float(background_weight)
        self.clip_temperature = float(clip_temperature)
        self.alpha = check_exponent('alpha', alpha)
        self.beta = check_exponent('beta', beta)
        self.register_buffer('class_embeddings', torch.zeros(0, self.embed_dim),
                             persistent=False)
        self.register_buffer('novel_mask', torch.zeros(1, dtype=torch.bool), persistent=False)

    # -------------------------------------------------------------- vocabulary
    def set_class_embeddings(self, embeddings: Tensor, novel_mask: Optional[Tensor] = None
                             ) -> None:
        """Use these ``(K, E)`` class embeddings (background is added last).

        ``novel_mask`` (``(K,)`` bool) selects the ensemble exponent per class
        at test time (novel: ``beta``, base: ``alpha``).
        """
        if embeddings.dim() != 2 or embeddings.shape[1] != self.embed_dim:
            raise ConfigError(f'class embeddings of shape {tuple(embeddings.shape)} do not fit '
                              f'the box head (embed_dim {self.embed_dim}): the text encoder '
                              'must be the backbone\'s CLIP model')
        k = embeddings.shape[0]
        if k == 0:
            raise ConfigError('empty vocabulary: name at least one class')
        device = self.logit_scale.device
        self.class_embeddings = F.normalize(embeddings.detach().float(), dim=-1).to(device)
        mask = torch.zeros(k + 1, dtype=torch.bool, device=device)
        if novel_mask is not None:
            mask[:k] = novel_mask.to(device=device, dtype=torch.bool)
        self.novel_mask = mask
        self.num_classes = k
        # mmdet's CrossEntropyLoss weights each RoI's loss by its target's weight.
        self.loss_cls.class_weight = [1.0] * k + [self.background_weight]

    def all_embeddings(self) -> Tensor:
        """``(K + 1, E)``: class embeddings, then the background embedding."""
        if self.class_embeddings.shape[0] == 0:
            raise ConfigError('FViTBBoxHead has no vocabulary: the detector sets it from the data '
                              "set's metainfo (or call detector.set_vocabulary('cat,dog'))")
        bg = F.normalize(self.background_embedding.float(), dim=-1)[None]
        return torch.cat([self.class_embeddings, bg.to(self.class_embeddings.device)])

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor, clip_embeddings: Optional[Tensor] = None
                ) -> Tuple[Tensor, Tensor]:
        """Logits (training) or probabilities (eval) over classes + background, and box deltas.

        Args:
            x: RoI features ``(N, C, 7, 7)``.
            clip_embeddings: ``(N, E)`` CLIP embeddings of the same RoIs
                (RoIAlign on the dense CLIP map); used in eval mode only.
        """
        projected, bbox_pred = super().forward(x)  # fc_cls: identity or the projection
        embeddings = self.all_embeddings().to(projected.dtype)
        logits = cosine_logits(projected, embeddings, self.logit_scale)
        if self.training:
            return logits, bbox_pred
        probs = logits.float().softmax(dim=-1)
        if clip_embeddings is not None:
            clip_logits = cosine_logits(clip_embeddings.float(), embeddings.float(),
                                        self.clip_temperature)
            probs = geometric_ensemble(probs, clip_logits.softmax(dim=-1), self.novel_mask,
                                       self.alpha, self.beta)
        return probs, bbox_pred

    def _predict_by_feat_single(self, roi: Tensor, cls_score: Tensor, bbox_pred: Tensor,
                                img_meta: dict, rescale: bool = False,
                                rcnn_test_cfg=None) -> InstanceData:
        """As mmdet's, except that ``cls_score`` already holds probabilities (see forward)."""
        results = InstanceData()
        if roi.shape[0] == 0:
            return empty_instances([img_meta], roi.device, task_type='bbox',
                                   instance_results=[results], box_type=self.predict_box_type,
                                   use_box_type=False, num_classes=self.num_classes,
                                   score_per_cls=rcnn_test_cfg is None)[0]
        scores = cls_score
        bboxes = self.bbox_coder.decode(roi[..., 1:], bbox_pred.view(-1, self.bbox_coder.encode_size),
                                        max_shape=img_meta['img_shape'])
        if rescale and bboxes.size(0) > 0:
            bboxes = scale_boxes(bboxes, [1 / s for s in img_meta['scale_factor']])
        bboxes = get_box_tensor(bboxes)
        box_dim = bboxes.size(-1)
        if rcnn_test_cfg is None:  # augmentation merging wants the raw boxes and scores
            results.bboxes = bboxes
            results.scores = scores
            return results
        det_bboxes, det_labels = multiclass_nms(bboxes, scores, rcnn_test_cfg.score_thr,
                                                rcnn_test_cfg.nms, rcnn_test_cfg.max_per_img,
                                                box_dim=box_dim)
        results.bboxes = det_bboxes[:, :-1]
        results.scores = det_bboxes[:, -1]
        results.labels = det_labels
        return results
