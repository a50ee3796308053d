"""Open-vocabulary detection in a few lines.

    from vitamin_dense.apis import Detector
    det = Detector(checkpoint='work_dirs/owl_vitamin_l_ovcoco/iter_45000.pth', device='cuda')
    result = det('photo.jpg', 'cat, kitten; dog')      # path, numpy RGB or PIL
    result.to_list()        # [{'box': [x1, y1, x2, y2], 'score': 0.91, 'name': 'cat'}, ...]
    result.save_visualization('boxes.png')
    result = det('other.jpg', query_image='photo.jpg', query_boxes=[(40, 60, 200, 220)])

The detector is built once (weights load once) and called many times. Boxes
are in the original image's pixels whatever its size or aspect ratio: the
image is resized (keeping its aspect ratio) to the model's input size, the OWL
model pads it to its square box frame (``frame_size``, as OWL pads to a square
in training and at evaluation), and the boxes are scaled back per axis. Images
of a batch never influence each other (:meth:`OwlDetector.detect`).

Where the model comes from:

* ``checkpoint`` (a runner checkpoint, read weights-only) of an OWL detector
  or of a Sliding F-ViT, with the config MMEngine stored inside it, or the
  ``config`` it was trained with; the checkpoint holds every weight, so
  nothing is downloaded;
* ``random_init=True``: the same architecture with random weights (no file
  needed), to exercise the whole path offline; the detections mean nothing.

An untrained OWL head predicts nothing useful, so without a checkpoint (and
without ``random_init``) building fails with a one-line error.

Pictures and results keep one label per box by default (``one_label_per_box``):
a box that scores for several classes, or boxes of different classes covering
the same object, keep their best label (class-agnostic NMS at ``nms_iou``).
Text and exemplar queries score on different scales (a box matching an
exemplar scores near 1), so each has its own default threshold
(:data:`DEFAULT_THRESHOLD`, :data:`DEFAULT_QUERY_THRESHOLD`; measured in
:mod:`vitamin_dense.utils.defaults`).
"""
from __future__ import annotations

import copy
import logging
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from ..errors import ConfigError, VitaminDenseError, WeightsError
from ..text import Vocabulary, parse_vocabulary
from ..text.vocabulary import VocabSpec
from ..utils.defaults import DETECTION_THRESHOLD, EXEMPLAR_THRESHOLD
from ..utils.image_io import ImageLike, describe_source, read_image
from ..utils.precision import check_precision, inference_autocast
from .detection_results import DetectionResult
from .segmenter import resolve_device

logger = logging.getLogger(__name__)

DEFAULT_INPUT_SIZE = 896
DEFAULT_THRESHOLD = DETECTION_THRESHOLD        # text queries
DEFAULT_QUERY_THRESHOLD = EXEMPLAR_THRESHOLD   # exemplar queries: their scores live near 1
_UNSET = object()
BoxLike = Union[Sequence[float], np.ndarray, torch.Tensor]


class QueryError(VitaminDenseError, ValueError):
    """An exemplar box is malformed or outside its query image."""


# --------------------------------------------------------------------- models
def default_detector_config(model_name: str = 'ViTamin-L-336',
                            weights: Optional[str] = 'datacomp1b') -> Dict[str, Any]:
    """The OwlDetector of ``configs/_base_/models/owl_vitamin.py`` for any ViTamin variant."""
    from ..backbones import get_variant
    window = get_variant(model_name).window_size
    return dict(
        type='OwlDetector',
        backbone=dict(type='ViTaminBackbone', model_name=model_name, weights=weights,
                      frozen=True, test_stride=max(16, (window * 2 // 3) // 16 * 16),
                      memory_budget_mb=2048),
        text_encoder=dict(type='TextClassifier', model_name=model_name, weights=weights,
                          templates='vild'),
        head=dict(type='OwlDetectionHead', box_anchor='center', context='image',
                  with_objectness=True, box_position_input=True),
        test_cfg=dict(score_thr=DEFAULT_THRESHOLD, max_per_img=100, nms_iou=0.5))


def _input_size_from_cfg(cfg) -> Optional[int]:
    """The test pipeline's Resize scale (longer side), if the config has one."""
    try:
        pipeline = cfg.test_dataloader.dataset.pipeline
    except (AttributeError, KeyError):
        return None
    for step in pipeline:
        if str(step.get('type', '')).split('.')[-1] == 'Resize' and step.get('scale'):
            scale = step['scale']
            return int(max(scale) if isinstance(scale, (list, tuple)) else scale)
    return None


def build_detector(config: Optional[str] = None, checkpoint: Optional[str] = None,
                   model: Optional[str] = None, weights: Optional[str] = 'datacomp1b',
                   random_init: bool = False, cfg_options: Optional[dict] = None,
                   device: Union[str, torch.device] = 'cpu'):
    """Build an :class:`~vitamin_dense.models.OwlDetector` (or a Sliding F-ViT) for inference.

    Returns ``(model, input_size)`` where ``input_size`` is the config's test
    resize (None when unknown). The data preprocessor of a training config
    (mmdet's) is dropped: OWL inference needs neither mmcv nor mmdet. An F-ViT
    comes wrapped in :class:`~vitamin_dense.apis.fvit_inference.FViTDetect`.
    """
    from ..engine.checkpoint import load_runner_checkpoint
    from ..registry import build_model
    from .checkpoint_config import config_from_checkpoint
    from .fvit_inference import FViTDetect, is_fvit_config
    state = None
    cfg = None
    if checkpoint is not None:
        ckpt = load_runner_checkpoint(checkpoint)
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
        if config is None:
            cfg = config_from_checkpoint(ckpt)
            if cfg is not None and cfg_options:
                cfg.merge_from_dict(cfg_options)
    if config is not None:
        from ..engine.config import load_config
        cfg = load_config(config, cfg_options)
    if checkpoint is None and not random_init:
        raise WeightsError('the detection head needs trained weights: pass --checkpoint '
                           '(train one with tools/train.py configs/ov_det/...), or --random-init '
                           'to run the whole path with random weights')
    if cfg is not None:
        if 'model' not in cfg:
            raise ConfigError(f'{config or checkpoint}: the config has no model')
        model_cfg = copy.deepcopy(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict')
                                  else dict(cfg.model))
        input_size = _input_size_from_cfg(cfg)
    else:
        if model is None:
            raise ConfigError('name the ViTamin variant (--model) or give --config')
        model_cfg = default_detector_config(model, None if random_init else weights)
        input_size = None
    fvit = is_fvit_config(model_cfg)
    if not fvit and model_cfg.get('type', 'OwlDetector').split('.')[-1] != 'OwlDetector':
        raise ConfigError(f"{config or checkpoint}: the model is a {model_cfg.get('type')}, not a "
                          'detector (OwlDetector or SlidingFViT)' +
                          ('; segment with demo/segment.py --checkpoint'
                           if 'Segmentor' in str(model_cfg.get('type')) else ''))
    model_cfg['data_preprocessor'] = None
    backbone = model_cfg.setdefault('backbone', {})
    if fvit:
        text = dict(model_cfg.get('text_encoder') or {})
    else:
        text = dict(model_cfg.get('text_encoder') or dict(
            type='TextClassifier', model_name=backbone.get('model_name', 'ViTamin-L-336'),
            weights=backbone.get('weights', 'datacomp1b'), templates='vild'))
    text['progress'] = False
    if state is not None or random_init:  # all weights come from the checkpoint (or nowhere)
        backbone['weights'] = None
        text['weights'] = None
    model_cfg['text_encoder'] = text
    if fvit:  # mmdet's detectors read their sub-configs as attributes
        from mmengine.config import ConfigDict
        model_cfg = ConfigDict(model_cfg)
    detector = build_model(model_cfg)
    if state is not None:
        _load_state(detector, state, checkpoint)
    if fvit:
        detector = FViTDetect(detector)
    return detector.to(device).eval(), input_size


def _load_state(detector, state: Dict[str, torch.Tensor], source: str) -> None:
    own = detector.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [k for k in own if k in state and hasattr(own[k], 'shape')  # not extra state
           and tuple(getattr(state[k], 'shape', ())) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        example = (bad + missing + unexpected)[0]
        raise WeightsError(f'checkpoint {source} does not fit the detector: {len(missing)} '
                           f'missing, {len(unexpected)} unexpected, {len(bad)} mis-shaped keys '
                           f'(e.g. {example}); pass the --config it was trained with')
    detector.load_state_dict(state, strict=True)  # the text tower re-keys its caches


# ------------------------------------------------------------------ the API
class Detector:
    """Build once, call many times: image + vocabulary (or exemplars) -> :class:`DetectionResult`.

    Args:
        config: a training config of an ``OwlDetector`` (``configs/ov_det/...``).
        checkpoint: weights trained with it (runner checkpoint, read weights-only).
        model / weights: ViTamin variant and CLIP weights for a config-less
            build (only meaningful with ``random_init`` or a checkpoint).
        device: ``'auto'`` (CUDA if available), ``'cpu'``, ``'cuda'``, ``'cuda:1'``.
        input_size: the longer image side fed to the network (images are
            resized, up or down, keeping their aspect ratio); default: the
            config's test resize, else 896. None keeps the original size.
        threshold: minimum score of a reported box for text queries
            (:data:`DEFAULT_THRESHOLD`).
        query_threshold: the same for exemplar queries, whose scores live on
            another scale: by default :data:`DEFAULT_QUERY_THRESHOLD`, or
            ``threshold`` when that is given (one cut for both); None: ``threshold``.
        max_detections: boxes per image at most.
        nms_iou: class-wise NMS IoU threshold (None: no NMS).
        one_label_per_box: keep only the best label of boxes that overlap by
            more than ``nms_iou`` (class-agnostic NMS; identical boxes always),
            so that a box never carries several labels; False keeps every
            (box, class) pair above the threshold, as the evaluation does.
        random_init: random weights everywhere (offline smoke runs).
        batch_size: images run together by :meth:`detect_batch`.
        precision: ``'fp32'``, or ``'bf16'`` for bfloat16 autocast (GPUs; see
            :mod:`vitamin_dense.utils.precision`).
    """

    def __init__(self, config: Optional[str] = None, checkpoint: Optional[str] = None,
                 model: Optional[str] = None, weights: Optional[str] = 'datacomp1b',
                 device: Union[None, str, torch.device] = 'auto', input_size=_UNSET,
                 threshold: float = _UNSET, max_detections: int = 100,
                 nms_iou: Optional[float] = 0.5, random_init: bool = False,
                 batch_size: int = 4, cfg_options: Optional[dict] = None,
                 query_threshold: Optional[float] = _UNSET,
                 one_label_per_box: bool = True, precision: str = 'fp32'):
        self.device = resolve_device(device)
        self.precision = check_precision(precision)
        if model is None and config is None and checkpoint is None:
            model = 'ViTamin-L-336'
        self.model, cfg_size = build_detector(config, checkpoint, model, weights, random_init,
                                              cfg_options, self.device)
        if input_size is _UNSET:
            input_size = cfg_size or DEFAULT_INPUT_SIZE
        if input_size is not None and int(input_size) < 16:
            raise ConfigError(f'input_size must be at least 16 px (or None), got {input_size}')
        self.input_size = None if input_size is None else int(input_size)
        self.threshold = _check_threshold(DEFAULT_THRESHOLD if threshold is _UNSET
                                          else threshold)
        if query_threshold is _UNSET:
            query_threshold = DEFAULT_QUERY_THRESHOLD if threshold is _UNSET else None
        self.query_threshold = self.threshold if query_threshold is None else \
            _check_threshold(query_threshold)
        self.one_label_per_box = bool(one_label_per_box)
        if int(max_detections) < 1:
            raise ConfigError(f'max_detections must be at least 1, got {max_detections}')
        self.max_detections = int(max_detections)
        self.nms_iou = nms_iou
        self.batch_size = max(1, int(batch_size))
        self.random_init = random_init

    # ---------------------------------------------------------------- inputs
    def prepare(self, image: ImageLike) -> Tuple[np.ndarray, torch.Tensor, Dict[str, Any]]:
        """Read and resize an image: ``(original RGB, normalised (3, h, w), meta)``."""
        rgb = read_image(image)
        h, w = rgb.shape[:2]
        if self.input_size is not None and max(h, w) != self.input_size:
            scale = self.input_size / max(h, w)
            th, tw = max(1, round(h * scale)), max(1, round(w * scale))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            resized = cv2.resize(rgb, (tw, th), interpolation=interp)
        else:
            resized, th, tw = rgb, h, w
        bb = self.model.backbone
        x = torch.from_numpy(np.ascontiguousarray(resized)).to(self.device)
        x = x.permute(2, 0, 1).float()
        mean = torch.tensor(bb.pixel_mean, device=self.device).view(3, 1, 1)
        std = torch.tensor(bb.pixel_std, device=self.device).view(3, 1, 1)
        meta = dict(img_shape=(th, tw), ori_shape=(h, w), scale_factor=(tw / w, th / h))
        return rgb, (x - mean) / std, meta

    # ----------------------------------------------------------------- calls
    def __call__(self, image: ImageLike, vocabulary: Optional[VocabSpec] = None, *,
                 query_image: Optional[ImageLike] = None,
                 query_boxes: Optional[Sequence[BoxLike]] = None,
                 query_names: Optional[Sequence[str]] = None,
                 threshold=_UNSET) -> DetectionResult:
        """Detect the vocabulary's classes, or objects like the exemplar boxes, in ``image``.

        Args:
            vocabulary: e.g. ``'cat,dog'`` or ``'kitten, cat; dog'`` (see
                :func:`~vitamin_dense.text.parse_vocabulary`).
            query_image / query_boxes: one-shot detection instead of a
                vocabulary: each ``(x1, y1, x2, y2)`` box (query-image pixels)
                becomes one query, named by ``query_names`` (default
                ``'exemplar 1'``, ...).
        """
        return self.detect_batch([image], vocabulary, query_image=query_image,
                                 query_boxes=query_boxes, query_names=query_names,
                                 threshold=threshold)[0]

    detect = __call__

    def detect_batch(self, images: Iterable[ImageLike], vocabulary: Optional[VocabSpec] = None,
                     *, query_image: Optional[ImageLike] = None,
                     query_boxes: Optional[Sequence[BoxLike]] = None,
                     query_names: Optional[Sequence[str]] = None,
                     threshold=_UNSET) -> List[DetectionResult]:
        """Detect in several images (run ``batch_size`` at a time, independently)."""
        if (vocabulary is None) == (query_image is None and query_boxes is None):
            raise ConfigError('give either a vocabulary or a query image with query boxes')
        if threshold is not _UNSET:
            threshold = _check_threshold(threshold)
        elif vocabulary is not None:
            threshold = self.threshold
        else:
            threshold = self.query_threshold
        queries = None
        info: Dict[str, Any] = {}
        if vocabulary is not None:
            vocab = parse_vocabulary(vocabulary)
            class_names = list(vocab.names)
        else:
            queries, chosen, class_names = self.exemplar_queries(query_image, query_boxes,
                                                                 query_names)
            vocab = None
            info['exemplar_tokens'] = [dict(box=[round(float(v), 1) for v in c['box']],
                                            iou=round(c['iou'], 3)) for c in chosen]
        images = list(images)
        results: List[DetectionResult] = []
        for start in range(0, len(images), self.batch_size):
            chunk = [self.prepare(img) for img in images[start:start + self.batch_size]]
            results += self._run(chunk, images[start:start + self.batch_size], vocab, queries,
                                 class_names, threshold, info)
        return results

    def _run(self, prepared, sources, vocab: Optional[Vocabulary], queries, class_names,
             threshold, info) -> List[DetectionResult]:
        hmax = max(x.shape[1] for _, x, _ in prepared)
        wmax = max(x.shape[2] for _, x, _ in prepared)
        batch = torch.zeros(len(prepared), 3, hmax, wmax, device=self.device)
        metas = []
        for i, (_, x, meta) in enumerate(prepared):
            batch[i, :, :x.shape[1], :x.shape[2]] = x
            metas.append(dict(meta, vocabulary=vocab) if vocab is not None else meta)
        start = time.perf_counter()
        # more candidates than reported: one label per box drops some of them
        candidates = self.max_detections * (5 if self.one_label_per_box else 1)
        with inference_autocast(self.device, self.precision):
            outs = self.model.detect(batch, metas, queries=queries, test_cfg=dict(
                score_thr=threshold, max_per_img=candidates, nms_iou=self.nms_iou))
        seconds = (time.perf_counter() - start) / len(prepared)
        results = []
        for (rgb, _, meta), out, src in zip(prepared, outs, sources):
            boxes, scores, labels = out.bboxes.float().cpu(), out.scores.float().cpu(), \
                out.labels.cpu()
            if self.one_label_per_box:
                boxes, scores, labels = one_label_per_box(boxes, scores, labels, self.nms_iou)
            order = scores.argsort(descending=True)[:self.max_detections]
            results.append(DetectionResult(
                boxes=boxes[order].numpy(), scores=scores[order].numpy(),
                labels=labels[order].numpy(), class_names=class_names, image=rgb,
                source=describe_source(src),
                meta=dict(info, model=self.model.backbone.model_name,
                          weights='random init' if self.random_init else 'checkpoint',
                          input_size=list(meta['img_shape']), threshold=threshold,
                          one_label_per_box=self.one_label_per_box,
                          seconds=round(seconds, 4))))
        return results

    def exemplar_queries(self, query_image: ImageLike, query_boxes: Sequence[BoxLike],
                         query_names: Optional[Sequence[str]] = None
                         ) -> Tuple[torch.Tensor, List[Dict[str, Any]], List[str]]:
        """Query embeddings of exemplar boxes on a query image (OWL-ViT's one-shot rule).

        Returns ``(queries (M, E), chosen tokens (box in query-image pixels, IoU), names)``.
        """
        if query_image is None or query_boxes is None:
            raise QueryError('one-shot detection needs both a query image and query boxes')
        rgb, x, meta = self.prepare(query_image)
        h, w = rgb.shape[:2]
        boxes = np.stack([check_query_box(b, (h, w), describe_source(query_image))
                          for b in _as_box_list(query_boxes)])
        sw, sh = meta['scale_factor']
        scaled = torch.as_tensor(boxes * np.array([sw, sh, sw, sh]), dtype=torch.float32)
        queries, chosen = self.model.embed_image_queries(x, scaled.to(self.device))
        names = list(query_names) if query_names else [f'exemplar {i + 1}' for i in
                                                       range(len(boxes))]
        if len(names) != len(boxes):
            raise QueryError(f'{len(names)} query names for {len(boxes)} query boxes')
        parse_vocabulary(names)  # empty or duplicated names fail here, with the usual message
        picked = [dict(box=(c.box.cpu().numpy() / np.array([sw, sh, sw, sh])).tolist(),
                       iou=c.iou, index=c.index) for c in chosen]
        return queries, picked, names

    def __repr__(self) -> str:
        kind = 'F-ViT' if type(self.model).__name__ == 'FViTDetect' else 'OWL'
        return (f'Detector({kind}, model={self.model.backbone.model_name}, device={self.device}, '
                f'input_size={self.input_size}, threshold={self.threshold} (exemplar queries '
                f'{self.query_threshold}), one_label_per_box={self.one_label_per_box})')


def one_label_per_box(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                      iou: Optional[float] = 0.5
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the best-scoring label among boxes overlapping by more than ``iou``.

    Class-agnostic NMS: a token's box reported for several classes, and boxes
    of different classes on the same object, become one box with its best
    label. ``iou=None`` removes exact duplicates only.
    """
    if not len(boxes):
        return boxes, scores, labels
    from torchvision.ops import nms
    keep = nms(boxes.float(), scores.float(), 0.999 if iou is None else float(iou))
    return boxes[keep], scores[keep], labels[keep]


# ------------------------------------------------------------------- checks
def _check_threshold(threshold: float) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'threshold must be a number in [0, 1), got {threshold!r}') from exc
    if not 0.0 <= value < 1.0:
        raise ConfigError(f'threshold {value} is not a score in [0, 1): boxes scoring below it '
                          'are dropped')
    return value


def _as_box_list(boxes) -> List:
    if isinstance(boxes, (np.ndarray, torch.Tensor)):
        arr = np.asarray(boxes.cpu() if isinstance(boxes, torch.Tensor) else boxes)
        return list(arr.reshape(-1, 4)) if arr.size % 4 == 0 and arr.size else [arr]
    boxes = list(boxes)
    if len(boxes) == 4 and all(isinstance(v, (int, float, np.number)) for v in boxes):
        return [boxes]  # a single box given flat
    if not boxes:
        raise QueryError('no query box given: pass at least one x1,y1,x2,y2 box')
    return boxes


def parse_box(text: str) -> Tuple[float, float, float, float]:
    """``'x1,y1,x2,y2'`` -> four floats, with a one-line error for anything else."""
    parts = [p.strip() for p in str(text).replace(' ', ',').split(',') if p.strip()]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(np.isfinite(values)):
        raise QueryError(f"query box '{text}' is not four numbers x1,y1,x2,y2 "
                         "(pixels of the query image), e.g. --query-box 10,20,110,140")
    return values  # type: ignore[return-value]


def check_query_box(box: BoxLike, image_hw: Tuple[int, int], source: str = 'the query image'
                    ) -> np.ndarray:
    """Validate an exemplar box against its image: 4 finite numbers, x1 < x2, y1 < y2, inside."""
    if isinstance(box, str):
        box = parse_box(box)
    arr = np.asarray(box.cpu() if isinstance(box, torch.Tensor) else box, dtype=np.float64)
    if arr.shape != (4,) or not np.isfinite(arr).all():
        raise QueryError(f'query box {box!r} is not four finite numbers x1,y1,x2,y2')
    x1, y1, x2, y2 = arr
    h, w = image_hw
    if not (x2 > x1 and y2 > y1):
        raise QueryError(f'query box {x1:g},{y1:g},{x2:g},{y2:g} is empty or inverted: '
                         'it must be x1,y1,x2,y2 with x1 < x2 and y1 < y2')
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        raise QueryError(f'query box {x1:g},{y1:g},{x2:g},{y2:g} lies outside {source} '
                         f'({w}x{h} px: x in [0, {w}], y in [0, {h}])')
    return arr


__all__ = ['Detector', 'DetectionResult', 'QueryError', 'build_detector',
           'default_detector_config', 'parse_box', 'check_query_box', 'one_label_per_box',
           'DEFAULT_INPUT_SIZE', 'DEFAULT_THRESHOLD', 'DEFAULT_QUERY_THRESHOLD']
