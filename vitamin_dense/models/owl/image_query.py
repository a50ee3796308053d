"""Image-conditioned (one-shot) queries, as OWL-ViT builds them.

An exemplar box drawn on a query image becomes a query embedding: run the
detector on the query image, keep the tokens whose predicted boxes overlap the
exemplar well (IoU at least ``iou_ratio`` times the best IoU), and among them
take the class embedding *least* similar to the mean class embedding of the
whole query image. Set-prediction training makes one token per object
"foreground" and its neighbours background-like; the image mean is the
background prototype, so the most dissimilar well-placed token is the one that
represents the object (scenic's OWL-ViT playground and Hugging Face's
``OwlViTForObjectDetection.embed_image_query`` do the same).

When no predicted box overlaps the exemplar at all, generalised IoU ranks them
instead (as scenic's OWL-ViT playground and Hugging Face do); GIoU is then
negative, and scenic keeps the boxes within 120 % of the best, ``giou >=
best * (2 - iou_ratio)`` (1.2 for the default 0.8).
"""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from ...errors import ConfigError


class ImageQuery(NamedTuple):
    """A query embedding made from an exemplar box."""

    embedding: Tensor  # (E,) unnormalised class embedding of the chosen token
    index: int  # token index of the chosen box
    box: Tensor  # (4,) the chosen token's predicted box, same frame as the inputs
    iou: float  # its IoU with the exemplar (GIoU when no box overlapped)


def select_query_embedding(class_embeds: Tensor, pred_boxes_xyxy: Tensor, query_box_xyxy: Tensor,
                           iou_ratio: float = 0.8) -> ImageQuery:
    """Pick the token that stands for an exemplar box.

    Args:
        class_embeds: ``(N, E)`` unnormalised class embeddings of the query
            image's tokens (the class head's projection, before normalising).
        pred_boxes_xyxy: ``(N, 4)`` the tokens' predicted boxes.
        query_box_xyxy: ``(4,)`` the exemplar, in the same frame.
        iou_ratio: keep boxes whose IoU is at least this fraction of the best.
    """
    from torchvision.ops import box_iou, generalized_box_iou
    if not 0 < iou_ratio <= 1:
        raise ConfigError(f'iou_ratio must be in (0, 1], got {iou_ratio}')
    if class_embeds.shape[0] != pred_boxes_xyxy.shape[0] or class_embeds.shape[0] == 0:
        raise ValueError('class_embeds and pred_boxes_xyxy must have the same, non-zero length')
    query = query_box_xyxy.reshape(1, 4).to(pred_boxes_xyxy)
    ious = box_iou(query, pred_boxes_xyxy)[0]
    best = ious.max()
    if best > 0:
        keep = ious >= best * iou_ratio
    else:
        ious = generalized_box_iou(query, pred_boxes_xyxy)[0]
        best = ious.max()
        keep = ious >= best.clamp(max=0.0) * (2.0 - iou_ratio)
    candidates = keep.nonzero().flatten()
    mean = class_embeds.mean(dim=0)
    similarity = class_embeds[candidates] @ mean
    index = int(candidates[similarity.argmin()])
    return ImageQuery(class_embeds[index], index, pred_boxes_xyxy[index], float(ious[index]))


__all__ = ['ImageQuery', 'select_query_embedding']
