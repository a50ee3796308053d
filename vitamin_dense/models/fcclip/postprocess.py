"""Mask-classification outputs to semantic, panoptic and instance segmentations.

Inputs per image: ``probs`` ``(Q, K + 1)`` (class probabilities, void last;
the FC-CLIP ensemble's output) and mask logits ``(Q, h, w)`` at stride 4 of
the padded batch. Masks are upsampled to the padded input, cropped to the
image and resized to the output size (Mask2Former's order), in chunks of
queries so that 250 queries at 1344 px never sit in memory at full size.
:func:`mask_inference` computes all three outputs in one pass: every mask is
upsampled and passed through the sigmoid once, and the upsampled queries are
consumed together in cache-sized bands of rows.

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
BAND_ELEMENTS = 2 ** 20  # elements of the work on one band of rows (cache-sized on a CPU;
# 64 times more on other devices, where each band costs kernel launches instead)
# upsampled mask logits held at once by mask_inference (2 GiB of float32)
GROUP_ELEMENTS = 2 ** 29


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


class _Panoptic:
    """Running per-pixel winner of the panoptic competition, fed band by band.

    Holds three full-size maps (best weighted score, owner, whether the
    owner's ``mask >= 0.5``) and per-query areas, instead of one full-size
    mask per kept query.
    """

    def __init__(self, labels: Tensor, scores: Tensor, size: Tuple[int, int]):
        device = scores.device
        self.labels, self.scores = labels, scores
        self.best = torch.full(size, -1.0, device=device)
        self.owner = torch.zeros(size, dtype=torch.long, device=device)
        self.owner_confident = torch.zeros(size, dtype=torch.bool, device=device)
        self.confident_area = torch.zeros(len(scores), dtype=torch.long, device=device)

    def update(self, prob: Tensor, first: int, pixels: slice) -> None:
        """Kept queries ``first, first + 1, ...`` compete on a band of ``pixels``
        (row-major indices): ``prob`` ``(n, len(band))``."""
        n = prob.shape[0]
        self.confident_area[first:first + n] += torch.count_nonzero(prob >= 0.5, dim=1)
        value, arg = (self.scores[first:first + n, None] * prob).max(0)
        best = self.best.view(-1)[pixels]
        better = value > best  # ties keep the earlier query, as argmax does
        best.copy_(torch.where(better, value, best))
        owner = self.owner.view(-1)[pixels]
        owner.copy_(torch.where(better, arg + first, owner))
        confident = self.owner_confident.view(-1)[pixels]
        confident.copy_(torch.where(better, prob.gather(0, arg[None])[0] >= 0.5, confident))

    def finish(self, is_thing: Tensor, num_classes: int, overlap_thr: float
               ) -> Tuple[Tensor, list]:
        """The panoptic map and its segments, from the winners and the per-query areas."""
        k = len(self.scores)
        if k == 0:
            return torch.full_like(self.owner, num_classes), []
        owned_area = torch.bincount(self.owner.flatten(), minlength=k).tolist()
        final_area = torch.bincount(self.owner[self.owner_confident], minlength=k).tolist()
        confident_area = self.confident_area.tolist()
        ids, survive, segments = [0] * k, [False] * k, []
        instance_id, stuff_done = 0, set()
        for q, (label, score, thing) in enumerate(zip(
                self.labels.tolist(), self.scores.tolist(), is_thing[self.labels].tolist())):
            if owned_area[q] == 0 or confident_area[q] == 0 or final_area[q] == 0:
                continue
            if owned_area[q] / confident_area[q] < overlap_thr:
                continue
            survive[q] = True
            if thing:
                instance_id += 1
                ids[q] = label + instance_id * INSTANCE_OFFSET
                segments.append(dict(id=ids[q], label=label, isthing=True, score=score))
            else:
                ids[q] = label  # stuff of one class shares id `label`
                if label not in stuff_done:
                    stuff_done.add(label)
                    segments.append(dict(id=label, label=label, isthing=False, score=score))
        device = self.owner.device
        ids_t = torch.tensor(ids, dtype=torch.long, device=device)
        painted = self.owner_confident & torch.tensor(survive, device=device)[self.owner]
        void = torch.full_like(self.owner, num_classes)
        return torch.where(painted, ids_t[self.owner], void), segments


def _bands(rows: int, per_row: int, elements: int) -> Iterator[Tuple[slice, slice]]:
    """``(rows, pixels)`` slices of bands of whole rows (``per_row`` pixels
    each) holding about ``elements`` elements of work."""
    step = max(1, elements // max(per_row, 1))
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        yield slice(start, stop), slice(start * per_row, stop * per_row)


def mask_inference(probs: Tensor, masks: MaskResizer, is_thing: Optional[Tensor] = None,
                   semantic: bool = True, panoptic: bool = True, instance: bool = True,
                   object_mask_thr: float = 0.8, overlap_thr: float = 0.8,
                   max_per_image: int = 100, semantic_scores: bool = False
                   ) -> Dict[str, object]:
    """Semantic, panoptic and instance outputs in one pass over the upsampled masks.

    Each query's mask is upsampled once (in chunks of queries, exactly as
    :class:`MaskResizer` does it) and passed through the sigmoid once. The
    queries are held upsampled in groups of up to :data:`GROUP_ELEMENTS`
    elements (at 1344 px all 250 of FC-CLIP's queries: 1.8 GB), and each group
    is consumed in cache-sized bands of rows by every requested output: the
    semantic scores of a band are one matrix product over all the group's
    queries and its labels a max over classes (no full-size ``K x H x W``
    scores, unless requested or the queries need several groups), the
    panoptic competition keeps a running per-pixel winner (three full-size
    maps, not a mask per query), the instances take their binary masks, areas
    and box extents. The results are those of :func:`semantic_inference`,
    :func:`panoptic_inference` and :func:`instance_inference` computed one
    after the other (sums run in another order, so scores agree to float
    rounding).

    Returns a dict with, as requested: ``sem_seg`` ``(Ho, Wo)`` int64 labels
    (``sem_scores`` ``(K, Ho, Wo)`` with ``semantic_scores``), ``panoptic``
    ``(Ho, Wo)`` int64 and ``segments``, ``instances`` (see :func:`instance_inference`).
    """
    num_classes = probs.shape[-1] - 1
    device = probs.device
    probs = probs.float()
    h, w = masks.out_size
    num_queries = probs.shape[0]
    needed = torch.zeros(num_queries, dtype=torch.bool, device=device)
    any_semantic = semantic or semantic_scores
    if any_semantic:
        needed[:] = True
    if is_thing is not None:
        is_thing = is_thing.to(device=device, dtype=torch.bool)
    pan = None
    if panoptic:
        if is_thing is None:
            raise ValueError('panoptic inference needs is_thing')
        pan_scores, pan_labels = probs.max(-1)
        is_kept = (pan_labels != num_classes) & (pan_scores > object_mask_thr)
        kept = torch.nonzero(is_kept).flatten()
        needed |= is_kept
        pan = _Panoptic(pan_labels[kept], pan_scores[kept], (h, w))
        kept_before = torch.cumsum(is_kept.long(), 0) - is_kept.long()  # rank among kept
    if instance:
        flat = probs[:, :-1].flatten()
        top_scores, top = flat.topk(min(max_per_image, flat.numel()), sorted=False)
        inst_labels = top % num_classes
        inst_queries = torch.div(top, num_classes, rounding_mode='floor')
        if is_thing is not None:
            things = is_thing[inst_labels]
            top_scores, inst_labels = top_scores[things], inst_labels[things]
            inst_queries = inst_queries[things]
        n_inst = inst_queries.numel()
        inst_masks = torch.zeros((n_inst, h, w), dtype=torch.bool, device=device)
        row_hits = torch.zeros((n_inst, h), dtype=torch.bool, device=device)
        col_hits = torch.zeros((n_inst, w), dtype=torch.bool, device=device)
        inside = torch.zeros(n_inst, dtype=torch.float32, device=device)
        area = torch.zeros(n_inst, dtype=torch.long, device=device)
        needed[inst_queries] = True
    index = torch.nonzero(needed).flatten()  # ascending: panoptic ties go to the earlier query
    group = max(1, min(GROUP_ELEMENTS // max(h * w, 1), index.numel()))
    groups = [part for part in index.split(group) if part.numel()]
    sem = labels = None
    if any_semantic:
        if semantic_scores or len(groups) > 1:  # scores summed over the groups
            # (Ho * Wo, K): classes last, so the label is a max over contiguous memory
            sem = torch.empty((h * w, num_classes), dtype=torch.float32, device=device)
        if semantic:
            labels = torch.empty(h * w, dtype=torch.long, device=device)
    position = torch.full((num_queries,), -1, dtype=torch.long, device=device)
    band_elements = BAND_ELEMENTS * (1 if device.type == 'cpu' else 64)
    for g, part in enumerate(groups):
        n = len(part)
        position[part] = torch.arange(n, device=device)
        chunks = [logits.reshape(len(p), -1) for p, logits in masks.chunks(part)]
        if instance:  # entries (query, class) whose query is in this group
            entries = torch.nonzero(position[inst_queries] >= 0).flatten()
            entry_rows = position[inst_queries[entries]]
        if any_semantic:
            cls = probs[part, :-1]
        if pan is not None:
            pan_rows = torch.nonzero(is_kept[part]).flatten()
            if pan_rows.numel():
                first_kept = int(kept_before[part[pan_rows[0]]])
                # kept queries are usually all of the group: a view, not a copy
                span = slice(int(pan_rows[0]), int(pan_rows[-1]) + 1)
                contiguous = pan_rows.numel() == span.stop - span.start
        for rows, pixels in _bands(h, w, band_elements // n):
            band = torch.cat([c[:, pixels] for c in chunks])  # (n, pixels), cache-sized
            if instance and entries.numel():
                binary = band[entry_rows] > 0
                b2 = binary.view(-1, rows.stop - rows.start, w)
                inst_masks[entries, rows] = b2
                row_hits[entries, rows] = b2.any(2)
                col_hits[entries] |= b2.any(1)
                area[entries] += torch.count_nonzero(binary, dim=1)
            prob = band.sigmoid_()
            if instance and entries.numel():
                inside[entries] += (prob[entry_rows] * binary).sum(1)
            if any_semantic:
                scores = prob.t() @ cls  # (pixels, K)
                if sem is not None:
                    target = sem[pixels]
                    if g:
                        scores = target.add_(scores)
                    else:
                        target.copy_(scores)
                if labels is not None and g == len(groups) - 1:
                    labels[pixels] = scores.max(-1).indices
            if pan is not None and pan_rows.numel():
                pan.update(prob[span] if contiguous else prob[pan_rows], first_kept, pixels)
        position[part] = -1
        del chunks
    out: Dict[str, object] = {}
    if labels is not None:
        out['sem_seg'] = labels.view(h, w)
    if semantic_scores:
        out['sem_scores'] = sem.view(h, w, num_classes).permute(2, 0, 1)
    if pan is not None:
        out['panoptic'], out['segments'] = pan.finish(is_thing, num_classes, overlap_thr)
    if instance:
        mask_score = inside / (area + 1e-6)
        out['instances'] = dict(masks=inst_masks, labels=inst_labels,
                                scores=top_scores * mask_score,
                                bboxes=_boxes_from_hits(row_hits, col_hits), queries=inst_queries)
    return out


def semantic_inference(probs: Tensor, masks: MaskResizer) -> Tensor:
    """``(K, Ho, Wo)`` per-class scores ``sum_q p(c | q) sigmoid(mask_q)``."""
    return mask_inference(probs, masks, semantic=False, panoptic=False, instance=False,
                          semantic_scores=True)['sem_scores']


def panoptic_inference(probs: Tensor, masks: MaskResizer, is_thing: Tensor,
                       object_mask_thr: float = 0.8, overlap_thr: float = 0.8
                       ) -> Tuple[Tensor, list]:
    """Panoptic map ``(Ho, Wo)`` int64 (mmdet convention) and segment descriptions."""
    out = mask_inference(probs, masks, is_thing, semantic=False, instance=False,
                         object_mask_thr=object_mask_thr, overlap_thr=overlap_thr)
    return out['panoptic'], out['segments']


def masks_to_boxes(masks: Tensor) -> Tensor:
    """``(N, 4)`` float ``x1, y1, x2, y2`` (exclusive ends) of boolean masks; zeros if empty."""
    return _boxes_from_hits(masks.any(2), masks.any(1))


def _boxes_from_hits(rows: Tensor, cols: Tensor) -> Tensor:
    """Boxes of masks given which rows ``(N, H)`` and columns ``(N, W)`` they touch."""
    n = rows.shape[0]
    boxes = torch.zeros((n, 4), dtype=torch.float32, device=rows.device)
    if n == 0:
        return boxes
    nonempty = cols.any(1)
    w, h = cols.shape[1], rows.shape[1]
    ar_w = torch.arange(w, device=rows.device)
    ar_h = torch.arange(h, device=rows.device)
    x1 = torch.where(cols, ar_w, w).min(1).values
    x2 = torch.where(cols, ar_w, -1).max(1).values + 1
    y1 = torch.where(rows, ar_h, h).min(1).values
    y2 = torch.where(rows, ar_h, -1).max(1).values + 1
    boxes[nonempty] = torch.stack([x1, y1, x2, y2], 1)[nonempty].float()
    return boxes


def instance_inference(probs: Tensor, masks: MaskResizer, is_thing: Optional[Tensor] = None,
                       max_per_image: int = 100) -> Dict[str, Tensor]:
    """Top (query, class) pairs as instances: ``masks`` bool, ``labels``, ``scores``, ``bboxes``."""
    return mask_inference(probs, masks, is_thing, semantic=False, panoptic=False,
                          max_per_image=max_per_image)['instances']


__all__ = ['INSTANCE_OFFSET', 'MaskResizer', 'mask_inference', 'semantic_inference',
           'panoptic_inference', 'instance_inference', 'masks_to_boxes']
