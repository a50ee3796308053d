"""Mask-classification outputs to semantic, panoptic and instance segmentations.

Inputs per image: ``probs`` ``(Q, K + 1)`` (class probabilities, void last;
the FC-CLIP ensemble's output) and mask logits ``(Q, h, w)`` at stride 4 of
the padded batch. Masks are upsampled to the padded input, cropped to the
image and resized to the output size (Mask2Former's order), in chunks of
queries so that 250 queries at 1344 px never sit in memory at full size.

* semantic: ``sum_q p(c | q) * sigmoid(mask_q)`` per class (Mask2Former);
* panoptic: queries with a non-void class scoring above ``object_mask_thr``
  compete per pixel by ``score * sigmoid(mask)``; a query keeps its pixels
  (inside its own ``mask >= 0.5``) only if they are at least ``overlap_thr``
  of its mask; stuff segments of one class merge. Output in mmdet's
  convention: ``label + instance_id * INSTANCE_OFFSET`` for things (ids from
  1), ``label`` for stuff, ``K`` (the void label) where nothing is assigned;
* instance: the ``max_per_image`` best (query, class) pairs among thing
  classes, binarised masks, score times the mean mask probability inside the
  mask, boxes from the masks.

``tests/test_seg_model.py`` checks these against mmdet's
``MaskFormerFusionHead`` on the same inputs (with ``filter_low_score=True``,
FC-CLIP's behaviour). One difference: like FC-CLIP, a query whose pixels all
fall below 0.5 after the overlap test gets no segment id, where mmdet still
consumes an instance id (same pixels, ids may be numbered differently).
FC-CLIP evaluates with ``object_mask_thr=0`` (mmdet's default 0.8): all
non-void queries compete.
"""
from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

INSTANCE_OFFSET = 1000  # mmdet's: panoptic id = label + instance_id * INSTANCE_OFFSET


class MaskResizer:
    """Upsample chunks of low-resolution mask logits to the output size.

    Args:
        mask_logits: ``(Q, h, w)`` at a stride of the padded batch.
        padded_size: ``(Hp, Wp)`` of the padded batch input.
        image_size: ``(H, W)`` of the valid image inside it (``img_shape``).
        out_size: ``(Ho, Wo)`` of the result (``ori_shape`` when rescaling).
        max_elements: bound on the elements of one upsampled chunk.
    """

    def __init__(self, mask_logits: Tensor, padded_size: Tuple[int, int],
                 image_size: Tuple[int, int], out_size: Tuple[int, int],
                 max_elements: int = 64 * 2 ** 20):
        self.mask_logits = mask_logits
        self.padded_size = tuple(int(s) for s in padded_size)
        self.image_size = tuple(int(s) for s in image_size)
        self.out_size = tuple(int(s) for s in out_size)
        largest = max(self.padded_size[0] * self.padded_size[1], self.out_size[0] * self.out_size[1])
        self.chunk = max(1, max_elements // max(largest, 1))

    def __call__(self, index: Tensor) -> Tensor:
        """Logits of the queries in ``index`` at the output size: ``(n, Ho, Wo)``."""
        m = self.mask_logits[index][None].float()
        if m.shape[-2:] != self.padded_size:
            m = F.interpolate(m, size=self.padded_size, mode='bilinear', align_corners=False)
        m = m[..., :self.image_size[0], :self.image_size[1]]
        if tuple(m.shape[-2:]) != self.out_size:
            m = F.interpolate(m, size=self.out_size, mode='bilinear', align_corners=False)
        return m[0]

    def chunks(self, index: Tensor) -> Iterator[Tuple[Tensor, Tensor]]:
        """``(index chunk, upsampled logits)`` pairs covering ``index``."""
        for start in range(0, index.numel(), self.chunk):
            part = index[start:start + self.chunk]
            yield part, self(part)


def semantic_inference(probs: Tensor, masks: MaskResizer) -> Tensor:
    """``(K, Ho, Wo)`` per-class scores ``sum_q p(c | q) sigmoid(mask_q)``."""
    num_classes = probs.shape[-1] - 1
    out = probs.new_zeros((num_classes, *masks.out_size), dtype=torch.float32)
    index = torch.arange(probs.shape[0], device=probs.device)
    cls = probs[:, :-1].float()
    for part, logits in masks.chunks(index):
        out += torch.einsum('qc,qhw->chw', cls[part], logits.sigmoid())
    return out


def panoptic_inference(probs: Tensor, masks: MaskResizer, is_thing: Tensor,
                       object_mask_thr: float = 0.8, overlap_thr: float = 0.8
                       ) -> Tuple[Tensor, list]:
    """Panoptic map ``(Ho, Wo)`` int64 (mmdet convention) and segment descriptions."""
    num_classes = probs.shape[-1] - 1
    scores, labels = probs.float().max(-1)
    keep = torch.nonzero((labels != num_classes) & (scores > object_mask_thr)).flatten()
    h, w = masks.out_size
    panoptic = torch.full((h, w), num_classes, dtype=torch.long, device=probs.device)
    segments: list = []
    if keep.numel() == 0:
        return panoptic, segments
    best = torch.full((h, w), -1.0, device=probs.device)
    owner = torch.zeros((h, w), dtype=torch.long, device=probs.device)
    confident = []  # (mask >= 0.5) of each kept query
    offset = 0
    for part, logits in masks.chunks(keep):
        prob = logits.sigmoid()
        confident.append(prob >= 0.5)
        weighted = scores[part].view(-1, 1, 1) * prob
        value, arg = weighted.max(0)
        better = value > best  # ties keep the earlier query, as argmax does
        best = torch.where(better, value, best)
        owner = torch.where(better, arg + offset, owner)
        offset += len(part)
    confident = torch.cat(confident)
    is_thing = is_thing.to(probs.device)
    instance_id = 0
    stuff_done: Dict[int, bool] = {}
    for k in range(keep.numel()):
        label = int(labels[keep[k]])
        owned = owner == k
        mask_area = int(owned.sum())
        original_area = int(confident[k].sum())
        mask = owned & confident[k]
        if mask_area == 0 or original_area == 0 or not bool(mask.any()):
            continue
        if mask_area / original_area < overlap_thr:
            continue
        if bool(is_thing[label]):
            instance_id += 1
            panoptic[mask] = label + instance_id * INSTANCE_OFFSET
            segments.append(dict(id=label + instance_id * INSTANCE_OFFSET, label=label,
                                 isthing=True, score=float(scores[keep[k]])))
        else:
            panoptic[mask] = label  # stuff of one class shares id `label`
            if label not in stuff_done:
                stuff_done[label] = True
                segments.append(dict(id=label, label=label, isthing=False,
                                     score=float(scores[keep[k]])))
    return panoptic, segments


def masks_to_boxes(masks: Tensor) -> Tensor:
    """``(N, 4)`` float ``x1, y1, x2, y2`` (exclusive ends) of boolean masks; zeros if empty."""
    n = masks.shape[0]
    boxes = torch.zeros((n, 4), dtype=torch.float32, device=masks.device)
    if n == 0:
        return boxes
    cols = masks.any(1)  # (N, W)
    rows = masks.any(2)  # (N, H)
    nonempty = cols.any(1)
    w, h = cols.shape[1], rows.shape[1]
    ar_w = torch.arange(w, device=masks.device)
    ar_h = torch.arange(h, device=masks.device)
    x1 = torch.where(cols, ar_w, w).min(1).values
    x2 = torch.where(cols, ar_w, -1).max(1).values + 1
    y1 = torch.where(rows, ar_h, h).min(1).values
    y2 = torch.where(rows, ar_h, -1).max(1).values + 1
    boxes[nonempty] = torch.stack([x1, y1, x2, y2], 1)[nonempty].float()
    return boxes


def instance_inference(probs: Tensor, masks: MaskResizer, is_thing: Optional[Tensor] = None,
                       max_per_image: int = 100) -> Dict[str, Tensor]:
    """Top (query, class) pairs as instances: ``masks`` bool, ``labels``, ``scores``, ``bboxes``."""
    num_classes = probs.shape[-1] - 1
    scores = probs[:, :-1].float().flatten()
    k = min(max_per_image, scores.numel())
    top_scores, top = scores.topk(k, sorted=False)
    labels = top % num_classes
    queries = torch.div(top, num_classes, rounding_mode='floor')
    if is_thing is not None:
        things = is_thing.to(probs.device)[labels]
        top_scores, labels, queries = top_scores[things], labels[things], queries[things]
    binary_chunks, mask_scores = [], []
    for _, logits in masks.chunks(queries):
        binary = logits > 0
        prob = logits.sigmoid()
        mask_scores.append((prob * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6))
        binary_chunks.append(binary)
    if binary_chunks:
        binary = torch.cat(binary_chunks)
        mask_score = torch.cat(mask_scores)
    else:
        binary = torch.zeros((0, *masks.out_size), dtype=torch.bool, device=probs.device)
        mask_score = top_scores.new_zeros(0)
    return dict(masks=binary, labels=labels, scores=top_scores * mask_score,
                bboxes=masks_to_boxes(binary), queries=queries)


__all__ = ['INSTANCE_OFFSET', 'MaskResizer', 'semantic_inference', 'panoptic_inference',
           'instance_inference', 'masks_to_boxes']
