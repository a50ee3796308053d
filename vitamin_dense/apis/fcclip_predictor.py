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
from ..visualization import class_colors, draw_detections
from ..visualization.panoptic import draw_panoptic
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
                score_threshold: Optional[float] = None) -> np.ndarray:
        """Semantic: class colours; panoptic: one colour per segment (instances of a
        class in shades of its colour); instance: masks with boxes and readable
        ``name score`` tags, as the detection pictures.

        Every instance of the result is drawn (the predictor's threshold already
        applied, so the picture shows what the listing lists); ``score_threshold``
        hides instances scoring below it.
        """
        if self.task == 'semantic':
            return super().overlay(image, alpha, legend, min_side, max_side, colors, boundaries,
                                   title)
        image = image if image is not None else self.image
        if image is None:
            raise ValueError('this result holds no image: pass overlay(image=...)')
        base = np.asarray(colors if colors is not None else class_colors(self.class_names))
        if self.task == 'instance':
            inst = self.instances or dict(masks=np.zeros((0,) + self.size, bool),
                                          labels=np.zeros(0, np.int64), scores=np.zeros(0),
                                          boxes=np.zeros((0, 4)))
            keep = np.ones(len(inst['scores']), bool) if score_threshold is None else \
                np.asarray(inst['scores']) >= score_threshold
            return draw_detections(image, np.asarray(inst['boxes'])[keep],
                                   np.asarray(inst['labels'])[keep],
                                   np.asarray(inst['scores'])[keep], self.class_names,
                                   colors=[tuple(int(c) for c in b) for b in base],
                                   min_side=min_side, max_side=max_side, legend=legend,
                                   title=title, masks=np.asarray(inst['masks'])[keep],
                                   alpha=alpha)
        ids = self.panoptic if self.panoptic is not None else np.full(self.size, -1)
        return draw_panoptic(image, ids, self.segments, self.class_names,
                             colors=[tuple(int(c) for c in b) for b in base], alpha=alpha,
                             min_side=min_side, max_side=max_side, legend=legend,
                             boundaries=boundaries, title=title)

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
                result.panoptic, result.segments = _panoptic_segments(sample, vocabulary,
                                                                      threshold)
            elif self.task == 'instance':
                inst = sample.pred_instances
                order = inst.scores.argsort(descending=True)
                if threshold is not None:  # the same cut for the listing and the picture
                    order = order[inst.scores[order] >= threshold]
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


def _panoptic_segments(sample, vocabulary: Vocabulary, threshold: Optional[float] = None
                       ) -> Tuple[np.ndarray, List[Dict]]:
    """Segment index map and segment list; segments scoring below ``threshold`` are dropped."""
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
        score = float(info.get(seg_id, {}).get('score', float('nan')))
        if threshold is not None and not score >= threshold:
            continue
        lut[k] = len(segments)
        segments.append(dict(id=len(segments), label=int(label), name=vocabulary.names[label],
                             isthing=seg_id >= INSTANCE_OFFSET,
                             score=score, area=int(area)))
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
    if not checkpoint:
        raise ConfigError('the fcclip predictor needs a checkpoint (--checkpoint CKPT, its '
                          'config read from it or given with --config); without it the demo '
                          'uses the training-free model')
    from ..engine.checkpoint import load_runner_checkpoint
    from ..registry import build_model, register_all_modules
    from .checkpoint_config import config_for_checkpoint
    register_all_modules(init_default_scope=False)
    ckpt = load_runner_checkpoint(checkpoint)
    cfg = config_for_checkpoint(config, ckpt, checkpoint, cfg_options)
    config = config or f'the config stored in {checkpoint}'
    if 'model' not in cfg or str(cfg.model.get('type')).split('.')[-1] != 'FCCLIPSegmentor':
        kind = cfg.model.get('type') if 'model' in cfg else 'no model'
        hint = ' (a detector: use demo/detect.py)' if kind and 'Segmentor' not in str(kind) \
            else ''
        raise ConfigError(f'{config} describes {kind}, not an FCCLIPSegmentor{hint}')
    state = ckpt.get('state_dict', ckpt)
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
