"""FC-CLIP's segmentation head: mask proposals classified against text embeddings.

* Pixel decoder (:class:`DeformablePixelDecoder`) and Mask2Former decoder
  (:class:`MaskedAttentionDecoder`) turn backbone maps into per-query mask logits.
* In-vocabulary classifier (trained): the pixel decoder's mask features are
  averaged inside each query's binarised mask, projected (LayerNorm + Linear),
  added to the query feature, mapped by an MLP into the text space, and
  compared by cosine with the class embeddings and a learnable void
  embedding, times a learnable temperature (init 1/0.07, clamped at 100).
* Out-of-vocabulary classifier (frozen): the binarised masks pool the frozen
  backbone's final tokens (``backbone.mask_pool``: pool, then ``fc_norm`` and
  ``proj``), compared by cosine with the class embeddings times CLIP's own
  logit scale.
* :func:`geometric_ensemble`: ``p_in^(1-a) * p_out^a`` for classes seen in
  training, ``p_in^(1-b) * p_out^b`` for unseen ones, renormalised and
  multiplied by ``1 - p_void`` (the in-vocabulary void probability).

Differences from mmdet's ``Mask2FormerHead`` (whose pixel decoder and
transformer decoder ours reproduce exactly, see ``tests/test_seg_heads.py``):

* classification: mmdet's ``cls_embed`` is a linear layer over a fixed class
  list; FC-CLIP's is the open-vocabulary classifier above (mask-pooled pixel
  features + query -> MLP -> cosine with text, temperature, void embedding);
* layer count: FC-CLIP's ``DEC_LAYERS=10`` counts the prediction on the
  initial queries, i.e. 9 decoder layers (``num_decoder_layers=9`` here,
  ``num_layers=9`` in mmdet), 10 supervised predictions;
* ``ensemble_on_valid_mask`` (FC-CLIP's ``ENSEMBLE_ON_VALID_MASK``; on by
  default here, off in FC-CLIP's configs and ours): a query whose mask covers no
  token uses the in-vocabulary branch alone, since pooling an empty mask gives
  ``proj(fc_norm(0))``.

Synonyms: with one embedding per class (``(K, E)``, the mean over its
synonyms) the classifiers compare with ``K`` rows; given per-synonym
embeddings grouped by class (``(K, M, E)``,
:func:`~vitamin_dense.text.classifier.group_synonyms`) they compare with every
synonym and keep each class's largest logit, in both branches, as FC-CLIP does.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import MODELS
from ...heads.pixel_decoder import DeformablePixelDecoder
from ...heads.transformer_decoder import MLP, DecoderStep, MaskedAttentionDecoder

MAX_LOGIT_SCALE = 100.0


def binary_mask_pool(features: Tensor, mask_logits: Tensor, eps: float = 1e-8) -> Tensor:
    """Average ``features`` (B, C, H, W) inside each mask ``logit > 0``: ``(B, Q, C)``.

    Masks are resized (bilinear, on logits) to the feature size first. No
    gradient flows into the masks (as FC-CLIP's ``MaskPooling``).
    """
    with torch.no_grad():
        if mask_logits.shape[-2:] != features.shape[-2:]:
            mask_logits = F.interpolate(mask_logits.float(), size=features.shape[-2:],
                                        mode='bilinear', align_corners=False)
        masks = (mask_logits > 0).to(features.dtype)
        masks = masks / (masks.sum(dim=(-2, -1), keepdim=True) + eps)
    return torch.einsum('bchw,bqhw->bqc', features, masks)


def cosine_logits(embeddings: Tensor, class_embeddings: Tensor, scale: Tensor) -> Tensor:
    """``scale * cos(embeddings, class_embeddings)``: ``(B, Q, K)``; classes already normalised.

    ``class_embeddings`` is ``(K, E)``, or ``(K, M, E)`` synonyms per class:
    then each class gets its synonyms' largest logit (FC-CLIP's
    ``get_classification_logits``; the gradient reaches the winning synonym).
    """
    embeddings = F.normalize(embeddings, dim=-1)
    if class_embeddings.dim() == 2:
        return scale * embeddings @ class_embeddings.t().to(embeddings.dtype)
    k, m, e = class_embeddings.shape
    logits = scale * embeddings @ class_embeddings.reshape(k * m, e).t().to(embeddings.dtype)
    return logits.unflatten(-1, (k, m)).max(dim=-1).values


def geometric_ensemble(in_logits: Tensor, out_logits: Optional[Tensor], seen: Tensor,
                       alpha: float = 0.45, beta: float = 0.7, valid: Optional[Tensor] = None,
                       use_in_vocab: bool = True, use_out_vocab: bool = True) -> Tensor:
    """FC-CLIP's ensemble of the two classifiers, as class probabilities.

    Args:
        in_logits: ``(B, Q, K + 1)`` in-vocabulary logits, void last.
        out_logits: ``(B, Q, K)`` out-of-vocabulary logits (or None).
        seen: ``(K,)`` bool, classes that were in the training vocabulary.
        alpha, beta: weight of the out-of-vocabulary branch for seen / unseen classes.
        valid: ``(B, Q)`` bool, masks that cover at least one token; invalid
            ones use the in-vocabulary branch alone (their pooled CLIP
            embedding would be meaningless).
        use_in_vocab / use_out_vocab: switch a branch off. The void
            probability always comes from the in-vocabulary classifier (the
            CLIP branch has no void class).

    Returns:
        ``(B, Q, K + 1)`` probabilities: ``p_class * (1 - p_void)`` and ``p_void`` last.
    """
    if not (use_in_vocab or use_out_vocab):
        raise ConfigError('at least one of the in-vocabulary and out-of-vocabulary '
                          'classifiers must be on')
    in_logits = in_logits.float()
    p_void = in_logits.softmax(-1)[..., -1:]
    log_in = in_logits[..., :-1].log_softmax(-1)
    if not use_out_vocab or out_logits is None:
        if not use_in_vocab:
            raise ConfigError('the out-of-vocabulary classifier is on alone but got no '
                              'out-of-vocabulary logits')
        cls = log_in.softmax(-1)
    else:
        log_out = out_logits.float().log_softmax(-1)
        if not use_in_vocab:
            cls = log_out.softmax(-1)
        else:
            seen = seen.to(device=log_in.device, dtype=torch.bool)
            weight = torch.where(seen, torch.tensor(alpha, device=log_in.device),
                                 torch.tensor(beta, device=log_in.device)).to(log_in.dtype)
            weight = weight.expand_as(log_in)
            if valid is not None:
                weight = weight * valid.to(log_in.dtype)[..., None]
            cls = ((1 - weight) * log_in + weight * log_out).softmax(-1)
    return torch.cat([cls * (1 - p_void), p_void], dim=-1)


@MODELS.register_module()
class FCCLIPHead(BaseModule):
    """Pixel decoder, masked-attention decoder and FC-CLIP's two classifiers.

    Args:
        in_channels: backbone channels at ``strides`` (finest first).
        embed_dim: dimension of the joint image-text space (CLIP's).
        strides: backbone strides of the inputs.
        hidden_dim: decoder width; the pixel decoder's ``feat_channels`` and
            ``out_channels`` default to it.
        num_queries, num_decoder_layers: see :class:`MaskedAttentionDecoder`.
        pixel_decoder / transformer_decoder: extra keyword arguments.
        logit_scale_init: initial in-vocabulary temperature (1/0.07).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 embed_dim: int,
                 strides: Sequence[int] = (4, 8, 16, 32),
                 hidden_dim: int = 256,
                 num_queries: int = 250,
                 num_decoder_layers: int = 9,
                 num_heads: int = 8,
                 pixel_decoder: Optional[dict] = None,
                 transformer_decoder: Optional[dict] = None,
                 logit_scale_init: float = 1 / 0.07,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        pd_cfg = dict(feat_channels=hidden_dim, out_channels=hidden_dim, num_heads=num_heads)
        pd_cfg.update(pixel_decoder or {})
        pd_cfg.pop('type', None)
        self.pixel_decoder = DeformablePixelDecoder(in_channels=in_channels, strides=strides,
                                                      **pd_cfg)
        td_cfg = dict(num_heads=num_heads)
        td_cfg.update(transformer_decoder or {})
        td_cfg.pop('type', None)
        self.transformer_decoder = MaskedAttentionDecoder(
            in_channels=self.pixel_decoder.feat_channels,
            mask_channels=self.pixel_decoder.out_channels, hidden_dim=hidden_dim,
            num_queries=num_queries, num_layers=num_decoder_layers,
            num_feature_levels=self.pixel_decoder.num_outs, **td_cfg)
        mask_dim = self.pixel_decoder.out_channels
        self.embed_dim = embed_dim
        self.num_queries = num_queries
        self.mask_pooling_proj = nn.Sequential(nn.LayerNorm(mask_dim), nn.Linear(mask_dim, hidden_dim))
        self.class_embed = MLP(hidden_dim, hidden_dim, embed_dim, 3)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale_init)))
        self.void_embedding = nn.Embedding(1, embed_dim)

    def init_weights(self) -> None:
        """Sub-modules initialise themselves at construction."""
        if self.init_cfg:
            super().init_weights()
        self._is_init = True

    # ----------------------------------------------------------- classifiers
    def in_vocab_logits(self, step: DecoderStep, mask_features: Tensor,
                        class_embeddings: Tensor) -> Tensor:
        """``(B, Q, K + 1)`` logits of one decoder step: the classes, then the
        learnable void embedding (normalised like the classes)."""
        pooled = binary_mask_pool(mask_features, step.masks)
        embed = self.class_embed(self.mask_pooling_proj(pooled) + step.queries)
        scale = self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
        void = F.normalize(self.void_embedding.weight, dim=-1)
        return torch.cat([cosine_logits(embed, class_embeddings, scale),
                          cosine_logits(embed, void, scale)], dim=-1)

    @staticmethod
    def out_vocab_logits(mask_logits: Tensor, tokens: Tensor, backbone: nn.Module,
                         class_embeddings: Tensor, logit_scale: Union[float, Tensor]):
        """CLIP classification of each mask: ``(B, Q, K)`` logits and ``(B, Q)`` validity.

        ``tokens``: the frozen backbone's ``s16`` map; masks (logits) are
        resized to it and binarised (``> 0``), then ``backbone.mask_pool``
        pools the tokens and applies ``fc_norm`` and ``proj``.
        """
        small = F.interpolate(mask_logits.float(), size=tokens.shape[-2:], mode='bilinear',
                              align_corners=False)
        binary = (small > 0).to(tokens.dtype)
        valid = binary.flatten(2).sum(-1) > 0
        embeds = backbone.mask_pool(binary, tokens, eps=1e-8)  # FC-CLIP's MaskPooling
        scale = torch.as_tensor(logit_scale, dtype=torch.float32,
                                device=embeds.device).clamp(max=MAX_LOGIT_SCALE)
        return cosine_logits(embeds.float(), class_embeddings.float(), scale), valid

    # --------------------------------------------------------------- forward
    def forward(self, feats: Union[Sequence[Tensor], Dict[str, Tensor]], class_embeddings: Tensor,
                all_steps: bool = True) -> Dict[str, List[Tensor]]:
        """
        Args:
            feats: backbone maps at the configured strides (a list, finest
                first, or the backbone's dict with ``s4 .. s32``).
            class_embeddings: ``(K, E)`` L2-normalised text embeddings, or
                ``(K, M, E)`` per synonym (each class scores its best synonym).
            all_steps: classify every decoder step (training, deep
                supervision) or only the last (inference).

        Returns:
            ``pred_logits``: list of ``(B, Q, K + 1)`` in-vocabulary logits
            (one per classified step, last = final); ``pred_masks``: list of
            ``(B, Q, H/4, W/4)`` mask logits (every step, or the last one
            without ``all_steps``); ``mask_features``.
        """
        if isinstance(feats, dict):
            feats = [feats[f's{s}'] for s in self.pixel_decoder.strides]
        mask_features, multi_scale = self.pixel_decoder(feats)
        steps = self.transformer_decoder(multi_scale, mask_features, keep_all=all_steps)
        classified = steps if all_steps else steps[-1:]
        logits = [self.in_vocab_logits(s, mask_features, class_embeddings) for s in classified]
        return dict(pred_logits=logits, pred_masks=[s.masks for s in steps],
                    mask_features=mask_features)


__all__ = ['FCCLIPHead', 'geometric_ensemble', 'binary_mask_pool', 'cosine_logits']
