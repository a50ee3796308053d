"""The trained FC-CLIP segmentor behind :class:`~vitamin_dense.apis.Segmenter`.

    seg = Segmenter(predictor='fcclip', config='configs/ov_seg/vitamin_l_coco.py',
                    checkpoint='work_dirs/vitamin_l_coco/iter_368750.pth', task='panoptic')
    result = seg('street.jpg', 'person; car, truck; road; sky')
    result.segments          # [{'id': 0, 'name': 'person', 'isthing': True, 'score': .93, ...}]
    result.save_overlay('street_panoptic.png')

The checkpoint holds every weight (the frozen backbone and text tower
included) and the training vocabulary, so nothing is downloaded: the config's
pretrained weights are replaced by the checkpoint's. Classes of a user
vocabulary that match a training class (FC-CLIP's rule) are "seen" and keep
its thing / stuff kind; other classes are unseen things.

Results are :class:`MaskSegmentationResult`: the semantic label map and class
shares of :class:`SegmentationResult` (any task), plus ``panoptic`` segments
(task ``panoptic``) or ``instances`` (task ``instance``), drawn accordingly.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import ConfigError, WeightsError
from ..models.training_free import label_map
from ..text import Vocabulary
from ..visualization import class_colors
from ..visualization.overlay import (LegendEntry, attach_legend, blend_labels, display_size,
                                     resize_for_display)
from .predictor import PreparedImage, register_predictor
from .results import SegmentationResult

logger = logging.getLogger(__name__)
TASKS = ('semantic', 'panoptic', 'instance')


@dataclass
class MaskSegmentationResult(SegmentationResult):
    """A :class:`SegmentationResult` with panoptic segments or instances.

    Attributes:
        task: ``'semantic'``, ``'panoptic'`` or ``'instance'``.
        panoptic: ``(H, W)`` int32 index into ``segments`` (``-1``: none), panoptic task.
        segments: one dict per panoptic segment: ``id``, ``label``, ``name``,
            ``isthing``, ``score``, ``area`` (pixels).
        instances: instance task: ``masks`` ``(N, H, W)`` bool, ``labels``,
            ``scores``, ``boxes`` (``x1, y1, x2, y2``), numpy arrays, best first.
    """

    task: str = 'semantic'
    panoptic: Optional[np.ndarray] = field(default=None, repr=False)
    segments: List[Dict[str, Any]] = field(default_factory=list)
    instances: Optional[Dict[str, np.ndarray]] = field(default=None, repr=False)

    def overlay(self, image: Optional[np.ndarray] = None, alpha: float = 0.5,
                legend: bool = True, min_side: int = 256, max_side: Optional[int] = 4096,
                colors=None, boundaries: bool = True, title: Optional[str] = None,
                score_threshold: float = 0.3) -> np.ndarray:
        """Semantic: class colours; panoptic: one colour per segment (instances of a
        class in shades of its colour); instance: masks above ``score_threshold``
        with boxes and labels."""
        if self.task == 'semantic':
            return super().overlay(image, alpha, legend, min_side, max_side, colors, boundaries,
                                   title)
        image = image if image is not None else self.image
        if image is None:
            raise ValueError('this result holds no image: pass overlay(image=...)')
        base = np.asarray(colors if colors is not None else class_colors(self.class_names))
        size = display_size(*image.shape[:2], min_side=min_side, max_side=max_side)
        shown = resize_for_display(image, size)
        if self.task == 'panoptic':
            ids = self.panoptic if self.panoptic is not None else np.full(self.size, -1)
            seg_colors = [_shade(base[s['label']], s, self.segments) for s in self.segments]
            canvas = blend_labels(shown, resize_for_display(ids, size, labels=True),
                                  seg_colors or [(0, 0, 0)], alpha=alpha, boundaries=boundaries)
            counts: Dict[int, int] = {}
            for s in self.segments:
                counts[s['label']] = counts.get(s['label'], 0) + 1
            total = max(1, ids.size)
            area: Dict[int, int] = {}
            for s in self.segments:
                area[s['label']] = area.get(s['label'], 0) + s['area']
            entries = [LegendEntry(self.class_names[k] + (f' x{counts[k]}' if counts[k] > 1 else ''),
                                   tuple(int(c) for c in base[k]), f'{100 * area[k] / total:.1f}%')
                       for k in sorted(counts, key=lambda k: -area[k])]
        else:
            canvas = _draw_instances(shown, self.instances, base, self.class_names, size,
                                     self.size, alpha, score_threshold)
            labels = self.instances['labels'][self.instances['scores'] >= score_threshold] \
                if self.instances is not None else np.empty(0, np.int64)
            entries = [LegendEntry(self.class_names[k], tuple(int(c) for c in base[k]),
                                   f'x{int((labels == k).sum())}') for k in sorted(set(labels.tolist()))]
        if not legend or not entries:
            return canvas
        return attach_legend(canvas, entries, title=title)

    def to_dict(self) -> Dict[str, Any]:
        out = super().to_dict()
        out['task'] = self.task
        if self.task == 'panoptic':
            out['segments'] = [dict(s) for s in self.segments]
        if self.task == 'instance' and self.instances is not None:
            out['instances'] = [dict(name=self.class_names[int(l)], score=float(s),
                                     box=[float(v) for v in b])
                                for l, s, b in zip(self.instances['labels'],
                                                   self.instances['scores'],
                                                   self.instances['boxes'])]
        return out


def _shade(color: np.ndarray, segment: Dict[str, Any], segments: Sequence[Dict]) -> Tuple:
    """The class colour, lightened / darkened per instance so touching instances differ."""
    if not segment['isthing']:
        return tuple(int(c) for c in color)
    same = [s for s in segments if s['label'] == segment['label'] and s['isthing']]
    k = same.index(segment)
    factor = 1.0 + 0.35 * (((k % 2) * 2 - 1) * ((k + 1) // 2) / max(1, len(same)))
    return tuple(int(np.clip(c * factor, 0, 255)) for c in color)


def _draw_instances(shown: np.ndarray, instances: Optional[Dict[str, np.ndarray]],
                    base: np.ndarray, names: Sequence[str], size: Tuple[int, int],
                    full: Tuple[int, int], alpha: float, threshold: float) -> np.ndarray:
    import cv2
    canvas = shown.copy()
    if instances is None:
        return canvas
    sy, sx = size[0] / full[0], size[1] / full[1]
    keep = np.nonzero(instances['scores'] >= threshold)[0]
    for i in keep[::-1]:  # best drawn last (on top)
        mask = resize_for_display(instances['masks'][i].astype(np.uint8), size, labels=True) > 0
        color = base[int(instances['labels'][i])].astype(np.float32)
        canvas[mask] = np.rint(canvas[mask] * (1 - alpha) + color * alpha).astype(np.uint8)
    for i in keep:
        x1, y1, x2, y2 = instances['boxes'][i]
        p1, p2 = (int(x1 * sx), int(y1 * sy)), (int(x2 * sx) - 1, int(y2 * sy) - 1)
        color = tuple(int(c) for c in base[int(instances['labels'][i])])
        cv2.rectangle(canvas, p1, p2, color, max(1, round(max(size) / 400)))
        text = f"{names[int(instances['labels'][i])]} {instances['scores'][i]:.2f}"
        cv2.putText(canvas, text, (p1[0] + 2, max(12, p1[1] + 12)), cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.35, max(size) / 1400), color, 1, cv2.LINE_AA)
    return canvas


class FCCLIPPredictor:
    """Runs a trained :class:`~vitamin_dense.models.FCCLIPSegmentor` on prepared images."""

    name = 'fcclip'
    tasks = TASKS

    def __init__(self, model, device: torch.device, task: str = 'semantic',
                 stride: Optional[int] = None):
        if task not in TASKS:
            raise ConfigError(f"unknown task '{task}': choose from {', '.join(TASKS)}")
        self.model = model.to(device).eval()
        self.device = device
        self.task = task
        if stride is not None:
            from ..backbones import check_stride
            check_stride(stride, model.backbone.window_size)
        self.stride = stride if stride is not None else model.test_cfg['stride']
        # semantic labels come from the low-resolution scores (label_map, bounded memory)
        self.outputs = dict(semantic_on=False, panoptic_on=task == 'panoptic',
                            instance_on=task == 'instance')

    def describe(self) -> str:
        """One line for logs: model, window, stride, task, training vocabulary size."""
        bb = self.model.backbone
        train = self.model.train_vocabulary
        return (f'FC-CLIP on {bb.model_name} (trained head, {self.task}): window '
                f'{bb.window_size}, stride {self.stride or bb.test_stride}, '
                f'{self.model.head.num_queries} queries, trained on '
                f'{len(train) if train is not None else "?"} classes')

    def _vocabulary(self, vocabulary: Vocabulary):
        """Test vocabulary with thing / stuff kinds borrowed from matching training classes."""
        from ..models.fcclip.vocabulary import SegVocabulary
        from ..text.splits import canonical_class_name
        train = self.model.train_vocabulary
        kinds: Dict[str, bool] = {}
        if train is not None:
            for names, thing in zip(train.classes, train.is_thing):
                for n in names:
                    kinds.setdefault(canonical_class_name(n), thing)
        flags = []
        for names in vocabulary.classes:
            found = [kinds[canonical_class_name(n)] for n in names
                     if canonical_class_name(n) in kinds]
            flags.append(found[0] if found else True)
        return SegVocabulary(vocabulary, tuple(flags))

    def predict(self, images: Sequence[PreparedImage], vocabulary: Vocabulary,
                threshold: Optional[float] = None) -> List[MaskSegmentationResult]:
        from mmengine.structures import BaseDataElement
        model = self.model
        model.set_vocabulary(self._vocabulary(vocabulary), 'test')
        results = []
        for image in images:
            start = time.perf_counter()
            h, w = image.processed_size
            rgb = image.processed
            if model.fixed_input_size:  # global position maps: the published test input
                rgb, (h, w) = _resize_and_pad(rgb, model.fixed_input_size)
            bgr = torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1]))
            sample = BaseDataElement(metainfo=dict(img_shape=(h, w), ori_shape=image.size))
            with torch.inference_mode():
                data = model.data_preprocessor(
                    dict(inputs=[bgr.permute(2, 0, 1)], data_samples=[sample]), False)
                out = model._forward(data['inputs'], stride=self.stride)
                sample = model.postprocess(out, data['inputs'].shape[-2:], data['data_samples'],
                                           **self.outputs)[0]
                probs, masks = out['class_probs'][0], out['mask_logits'][0]
                scores = _low_res_semantic(probs, masks)
                ph, pw = data['inputs'].shape[-2:]
                region = (0.0, 0.0, h / ph, w / pw)
                labels, counts = label_map(scores, image.size, region, threshold,
                                           are_logits=False)
            from ..backbones import count_windows
            stride = self.stride or model.backbone.test_stride
            meta = dict(image.meta, predictor=self.name, task=self.task,
                        model=model.backbone.model_name, stride=stride,
                        window=model.backbone.window_size, processed_size=[h, w],
                        windows=count_windows(ph, pw, model.backbone.window_size, stride),
                        seconds=time.perf_counter() - start)
            result = MaskSegmentationResult(
                labels=labels, class_names=list(vocabulary.names), scores=scores.float().cpu(),
                region=region, pixel_counts=counts, scores_are_logits=False, threshold=threshold,
                image=image.original, source=image.source, meta=meta, task=self.task)
            if self.task == 'panoptic':
                result.panoptic, result.segments = _panoptic_segments(sample, vocabulary)
            elif self.task == 'instance':
                inst = sample.pred_instances
                order = inst.scores.argsort(descending=True)
                result.instances = dict(masks=inst.masks[order].cpu().numpy(),
                                        labels=inst.labels[order].cpu().numpy(),
                                        scores=inst.scores[order].cpu().numpy(),
                                        boxes=inst.bboxes[order].cpu().numpy())
            results.append(result)
        return results


def _resize_and_pad(rgb: np.ndarray, size: int) -> Tuple[np.ndarray, Tuple[int, int]]:
    """Sliding FC-CLIP's test input: the longer side resized to ``size``, then zero-padded
    (black, before normalisation) to ``size x size``; returns it and the resized size."""
    import cv2
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))
    if (nh, nw) != (h, w):
        rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((size, size, 3), dtype=rgb.dtype)
    out[:nh, :nw] = rgb
    return out, (nh, nw)


def _low_res_semantic(probs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``(K, h, w)`` class probabilities at the mask resolution (stride 4 of the padded input)."""
    scores = torch.einsum('qc,qhw->chw', probs[:, :-1].float(), masks.float().sigmoid())
    return scores / scores.sum(0, keepdim=True).clamp_min(1e-12)


def _panoptic_segments(sample, vocabulary: Vocabulary) -> Tuple[np.ndarray, List[Dict]]:
    from ..models.fcclip.postprocess import INSTANCE_OFFSET
    pan = sample.pred_panoptic_seg.sem_seg[0].cpu()
    info = {s['id']: s for s in sample.pred_panoptic_seg.metainfo.get('segments_info', [])}
    ids, inverse, counts = torch.unique(pan, return_inverse=True, return_counts=True)
    lut = torch.full((len(ids),), -1, dtype=torch.int32)  # unique id -> segment index
    segments = []
    for k, (seg_id, area) in enumerate(zip(ids.tolist(), counts.tolist())):
        label = seg_id % INSTANCE_OFFSET
        if label >= len(vocabulary):
            continue  # void
        lut[k] = len(segments)
        segments.append(dict(id=len(segments), label=int(label), name=vocabulary.names[label],
                             isthing=seg_id >= INSTANCE_OFFSET,
                             score=float(info.get(seg_id, {}).get('score', float('nan'))),
                             area=int(area)))
    return lut[inverse].numpy(), segments


@register_predictor('fcclip')
def build_fcclip_predictor(config: Optional[str] = None, checkpoint: Optional[str] = None,
                           device: Optional[torch.device] = None, stride: Optional[int] = None,
                           task: str = 'semantic', progress: bool = False,
                           memory_budget_mb: Optional[float] = None,
                           cfg_options: Optional[Dict[str, Any]] = None,
                           **ignored) -> FCCLIPPredictor:
    """Factory: a trained segmentor from ``config`` + ``checkpoint`` (weights-only load).

    ``Segmenter``'s ``model`` / ``weights`` / ``templates`` do not apply: the
    config names the model and the checkpoint holds its weights.
    """
    if not config or not checkpoint:
        raise ConfigError('the fcclip predictor needs both a config and a checkpoint '
                          '(--config CONFIG --checkpoint CKPT); without them the demo uses '
                          'the training-free model')
    from ..engine.checkpoint import load_runner_checkpoint
    from ..engine.config import load_config
    from ..registry import build_model, register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = load_config(config, cfg_options)
    if 'model' not in cfg or cfg.model.get('type') != 'FCCLIPSegmentor':
        raise ConfigError(f'{config} does not describe an FCCLIPSegmentor model')
    state = load_runner_checkpoint(checkpoint)
    state = state.get('state_dict', state)
    if not any(k.startswith('head.') for k in state):
        raise WeightsError(f'{checkpoint} holds no FC-CLIP head weights (head.*): is it a '
                           'checkpoint of this model?')
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.weights = None  # all weights come from the checkpoint
    model_cfg.setdefault('text_encoder', {})['weights'] = None
    model_cfg.backbone.progress = progress
    if memory_budget_mb is not None:
        model_cfg.backbone.memory_budget_mb = memory_budget_mb
    model = build_model(model_cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith('criterion')]
    if missing or unexpected:
        raise WeightsError(f'{checkpoint} does not match {config}: {len(missing)} missing and '
                           f'{len(unexpected)} unexpected weights (e.g. '
                           f'{(missing + unexpected)[0]})')
    if model.train_vocabulary is None:
        logger.warning('%s carries no training vocabulary: every class counts as unseen',
                       checkpoint)
    return FCCLIPPredictor(model, device or torch.device('cpu'), task=task, stride=stride)


__all__ = ['FCCLIPPredictor', 'MaskSegmentationResult', 'build_fcclip_predictor', 'TASKS']
