"""One entry point for every model, in MMDetection's ``DetInferencer`` style.

    from vitamin_dense.apis import DenseInferencer
    inferencer = DenseInferencer(weights='work_dirs/owl_vitamin_l_ovcoco/iter_45000.pth')
    out = inferencer('photos/', texts='cat; dog', out_dir='outputs/', batch_size=4)
    out['predictions'][0]     # {'labels': [...], 'scores': [...], 'bboxes': [...], ...}

``model`` is a config (path, or a name under ``configs/``), or a ViTamin
variant name for the training-free segmenter; ``weights`` is the checkpoint
(tools/train.py's, whose stored config says what the model is) or, for the
training-free model, the CLIP weights. The model kind (training-free,
FC-CLIP, OWL, Sliding F-ViT) is read from the config, so one call serves them
all; the work is done by :class:`~vitamin_dense.apis.Segmenter` and
:class:`~vitamin_dense.apis.Detector`, which this class only wraps.

A call takes a path, a directory, an RGB array or a list of them, and returns
``{'predictions': [dict per image], 'visualization': [RGB arrays] or None}``.
With ``out_dir`` it writes ``vis/<image name>`` (the pictures) and ``preds/``:
``<image name>.json`` per image (mmdet's per-image files; masks as COCO RLE,
panoptic maps as ``preds/panoptic/<name>.png``) and the COCO files of the run
(:mod:`~vitamin_dense.apis.coco_outputs`: ``coco.bbox.json``,
``coco.segm.json``, ``coco.panoptic.json``).
"""
from __future__ import annotations

import json
import logging
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import ConfigError, ImageReadError
from ..utils.image_io import ImageLike

logger = logging.getLogger(__name__)

KINDS = ('training-free', 'fcclip', 'owl', 'fvit')
FAMILIES = {'segmenter': ('training-free', 'fcclip'), 'detector': ('owl', 'fvit')}
_MODEL_KINDS = {'TrainingFreeSegmentor': 'training-free', 'FCCLIPSegmentor': 'fcclip',
                'OwlDetector': 'owl', 'SlidingFViT': 'fvit'}
_CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
_UNSET = object()


def model_kind(model_cfg) -> Optional[str]:
    """``'training-free'``, ``'fcclip'``, ``'owl'`` or ``'fvit'`` for a model config (None: other)."""
    return _MODEL_KINDS.get(str(model_cfg.get('type', '')).split('.')[-1])


def resolve_config(model: str) -> Optional[str]:
    """A config file for ``model``: the path itself, or a name under ``configs/``
    (``'ov_seg/vitamin_tiny_synthetic'``); None when ``model`` names no config."""
    if osp.isfile(model):
        return model
    name = model if model.endswith('.py') else model + '.py'
    for candidate in (osp.join(_CONFIGS, name), osp.join(_CONFIGS, 'ov_seg', name),
                      osp.join(_CONFIGS, 'ov_det', name)):
        if osp.isfile(candidate):
            return candidate
    if model.endswith('.py') or os.sep in model or '/' in model:
        raise ConfigError(f'config not found: {model}')
    return None


class DenseInferencer:
    """Build once, call on images: training-free, FC-CLIP, OWL and F-ViT models alike.

    Args:
        model: a config path or name (``'ov_det/owl_vitamin_tiny_synthetic'``),
            or a ViTamin variant (``'ViTamin-L-336'``: the training-free
            segmenter, or with ``kind='owl'`` an OWL detector without
            checkpoint); None: the checkpoint's own config, else ViTamin-L-336.
        weights: a tools/train.py checkpoint, or for the training-free model
            its CLIP weights (tag, ``hf-hub:`` id or file; default ``datacomp1b``).
        device: ``'auto'``, ``'cpu'``, ``'cuda'``, ``'cuda:N'``.
        kind: force a kind (``'training-free'``, ``'fcclip'``, ``'owl'``,
            ``'fvit'``) or a family (``'segmenter'``, ``'detector'``): a model of
            another kind is refused with a one-line error.
        random_init: random weights (smoke runs; outputs mean nothing).
        task: FC-CLIP's output, ``'semantic'``, ``'panoptic'`` or ``'instance'``.
        show_progress: progress bars.
        **options: passed to :class:`Segmenter` (``stride``, ``templates``,
            ``threshold``, ``max_side``...) or :class:`Detector` (``input_size``,
            ``threshold``, ``max_detections``, ``nms_iou``, ``one_label_per_box``...).
    """

    def __init__(self, model: Optional[str] = None, weights: Optional[str] = None,
                 device: Optional[str] = 'auto', *, kind: Optional[str] = None,
                 random_init: bool = False, task: str = 'semantic',
                 show_progress: bool = False, **options):
        allowed = FAMILIES.get(kind, (kind,) if kind else KINDS)
        if not set(allowed) <= set(KINDS):
            raise ConfigError(f"unknown kind '{kind}': choose from "
                              f"{', '.join(KINDS + tuple(FAMILIES))}")
        config = resolve_config(model) if model else None
        variant = model if model and config is None else None
        self.kind = self._choose_kind(config, variant, weights, allowed)
        # weights: a checkpoint for trained models, CLIP weights for the training-free one
        checkpoint = weights if self.kind != 'training-free' and variant is None else None
        self.task = task if self.kind == 'fcclip' else (
            'semantic' if self.kind == 'training-free' else 'detection')
        self.random_init = random_init
        self.show_progress = show_progress
        self.segmenter = self.detector = None
        self.vocabulary = None  # a training-free config's vocabulary: the default texts
        if self.kind in ('owl', 'fvit', 'detector'):
            from .detector import Detector
            self.detector = Detector(config=config, checkpoint=checkpoint, model=variant,
                                     weights=None if checkpoint else (weights or 'datacomp1b'),
                                     device=device, random_init=random_init, **options)
            self.kind = 'fvit' if type(self.detector.model).__name__ == 'FViTDetect' else 'owl'
            if self.kind not in allowed:
                raise ConfigError(f'{config or checkpoint} holds a {self.kind} detector, not '
                                  f"{' or '.join(allowed)}")
            self.device = self.detector.device
            return
        from .segmenter import Segmenter
        if self.kind == 'fcclip':
            self.segmenter = Segmenter(predictor='fcclip', config=config, checkpoint=checkpoint,
                                       task=task, device=device, progress=show_progress,
                                       **options)
        else:
            if task != 'semantic':
                raise ConfigError(f'task {task!r} needs a trained FC-CLIP checkpoint; the '
                                  'training-free model gives semantic labels')
            clip = self._training_free_options(config, variant, weights, random_init)
            self.vocabulary = clip.pop('vocabulary', None)
            self.segmenter = Segmenter(**dict(clip, **options), device=device,
                                       progress=show_progress)
        self.device = self.segmenter.device

    # ------------------------------------------------------------- building
    @staticmethod
    def _choose_kind(config: Optional[str], variant: Optional[str], weights: Optional[str],
                     allowed: Sequence[str]) -> str:
        """The kind to build; ``'detector'`` when the Detector tells OWL from F-ViT itself.

        A config is read (cheap); a checkpoint is read only when both families or
        both segmenters are allowed and no config is given.
        """
        if config is not None:
            from ..engine.config import load_config
            kind = model_kind(load_config(config).get('model', {}))
            if kind in allowed:
                return 'detector' if kind in FAMILIES['detector'] else kind
            if set(allowed) <= set(FAMILIES['detector']):
                return 'detector'  # the Detector says what the config holds instead
            if 'fcclip' in allowed:
                return 'fcclip'  # the FC-CLIP predictor says what the config holds instead
            raise ConfigError(f"{config} describes {kind or 'no model this API runs'}, not "
                              f"{' or '.join(allowed)}")
        checkpoint = weights if weights and osp.isfile(weights) and \
            not weights.endswith(('.safetensors', '.bin')) else None
        if variant is not None or checkpoint is None or len(allowed) == 1:
            if variant is None and checkpoint is not None:
                return allowed[0]
            for kind in ('training-free', 'owl'):  # models that run without a checkpoint
                if kind in allowed:
                    return 'detector' if kind == 'owl' else kind
            return allowed[0]
        if set(allowed) <= set(FAMILIES['detector']):
            return 'detector'
        from ..engine.checkpoint import load_runner_checkpoint
        from .checkpoint_config import config_from_checkpoint
        ckpt = load_runner_checkpoint(checkpoint)
        cfg = config_from_checkpoint(ckpt)
        if cfg is None:
            if isinstance(ckpt, dict) and ('state_dict' in ckpt or 'meta' in ckpt):
                raise ConfigError(f'{checkpoint} carries no config (not written by '
                                  'tools/train.py?): pass the config it was trained with as '
                                  'model=CONFIG')
            if 'training-free' in allowed:
                return 'training-free'  # an open_clip weights file
        kind = model_kind(cfg.get('model', {})) if cfg is not None else None
        if kind not in allowed:
            raise ConfigError(f"{checkpoint} holds {kind or 'no model this API runs'}, not "
                              f"{' or '.join(allowed)}")
        return 'detector' if kind in FAMILIES['detector'] else kind

    @staticmethod
    def _training_free_options(config: Optional[str], variant: Optional[str],
                               weights: Optional[str], random_init: bool) -> Dict[str, Any]:
        if config is not None:
            from ..engine.config import load_config
            cfg = load_config(config).model
            opts = dict(model=cfg.get('model_name', 'ViTamin-L-336'),
                        weights=weights or cfg.get('weights'), templates=cfg.get('templates',
                                                                                 'vild'))
            if cfg.get('stride'):
                opts['stride'] = cfg['stride']
            if cfg.get('vocabulary'):
                opts['vocabulary'] = cfg['vocabulary']
        else:
            opts = dict(model=variant or 'ViTamin-L-336', weights=weights or 'datacomp1b')
        if random_init:
            if weights:
                raise ConfigError('weights and random_init exclude each other')
            opts['weights'] = None
        return opts

    @property
    def model(self):
        """The segmenter's predictor or the detector's network."""
        return self.detector.model if self.detector is not None else self.segmenter.predictor

    # --------------------------------------------------------------- inputs
    @staticmethod
    def collect_inputs(inputs: Union[ImageLike, Sequence[ImageLike]]) -> List[ImageLike]:
        """A path, a directory (its images), an array or a list of those -> a flat list."""
        from ..utils.image_io import list_images
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        flat: List[ImageLike] = []
        for item in items:
            if isinstance(item, (str, os.PathLike)) and osp.isdir(item):
                found = list_images(str(item))
                if not found:
                    raise ImageReadError(f'directory {item} holds no image files')
                flat += found
            else:
                flat.append(str(item) if isinstance(item, os.PathLike) else item)
        if not flat:
            raise ImageReadError('no image given')
        return flat

    # ----------------------------------------------------------------- calls
    def predict(self, images: Sequence[ImageLike], vocabulary=None, *,
                batch_size: Optional[int] = None,
                pred_score_thr=_UNSET, on_error: str = 'raise', **queries) -> List[Any]:
        """Result objects (:class:`SegmentationResult` / :class:`DetectionResult`), one per image.

        ``on_error='return'`` puts a failing image's error in its slot (segmenters).
        ``queries``: ``query_image`` / ``query_boxes`` / ``query_names`` (OWL one-shot).
        ``pred_score_thr`` 0 (or None) keeps every pixel / segment of a segmenter.
        ``batch_size``: images a detector runs at once (default: its own, 4).
        """
        threshold = {} if pred_score_thr is _UNSET else dict(threshold=pred_score_thr)
        images = list(images)
        if self.detector is not None:
            if batch_size is not None:
                self.detector.batch_size = max(1, int(batch_size))
            call = dict(vocabulary=vocabulary) if vocabulary is not None else queries
            return self.detector.detect_batch(images, **call, **threshold)
        if vocabulary is None:
            raise ConfigError('segmentation needs a vocabulary (texts=...)')
        if threshold and not threshold['threshold']:  # 0: keep everything, as no threshold
            threshold['threshold'] = None
        return self.segmenter.segment_batch(images, vocabulary, on_error=on_error, **threshold)

    def __call__(self, inputs: Union[ImageLike, Sequence[ImageLike]], batch_size: int = 1, *,
                 texts=None, vocabulary=None, out_dir: str = '', no_save_vis: bool = False,
                 no_save_pred: bool = False, pred_score_thr=_UNSET, return_vis: bool = False,
                 return_datasamples: bool = False, print_result: bool = False,
                 category_ids=None, **queries) -> Dict[str, Any]:
        """Predict, draw and write, as mmdet's ``DetInferencer.__call__``.

        Args:
            inputs: image path, directory, RGB array (or PIL image), or a list of them.
            texts / vocabulary: the classes (``'cat; dog'``, a list, ``dataset:NAME``);
                default: a training-free config's own ``vocabulary``.
            out_dir: where ``vis/`` and ``preds/`` go ('' writes nothing).
            pred_score_thr: score cut (default: the model's own).
            return_vis: return the pictures even when not saving them.
            return_datasamples: predictions as result objects instead of dicts.
            category_ids: COCO category ids of the classes (default 1..K).
            **queries: ``query_image``, ``query_boxes``, ``query_names`` (OWL one-shot).
        """
        if texts is not None and vocabulary is not None:
            raise ConfigError('give texts or vocabulary, not both')
        vocabulary = texts if texts is not None else vocabulary
        if vocabulary is None and not queries:
            vocabulary = self.vocabulary
        images = self.collect_inputs(inputs)
        names = output_names(images)
        results = self.predict(images, vocabulary, batch_size=batch_size,
                               pred_score_thr=pred_score_thr, **queries)
        save_vis = bool(out_dir) and not no_save_vis
        save_pred = bool(out_dir) and not no_save_pred
        pictures = None
        if save_vis or return_vis:
            pictures = [self.visualize(r) for r in results]
            if save_vis:
                from ..utils.image_io import save_image
                for picture, name in zip(pictures, names):
                    save_image(osp.join(out_dir, 'vis', name), picture)
        preds_dir = osp.join(out_dir, 'preds') if save_pred else None
        predictions = results
        if preds_dir or not return_datasamples:  # the per-image files whatever is returned
            dicts = [prediction_dict(r, name, preds_dir) for r, name in zip(results, names)]
            predictions = results if return_datasamples else dicts
        if save_pred:
            self.write_coco(results, osp.join(out_dir, 'preds'), names, category_ids)
        if print_result:
            print(json.dumps([prediction_dict(r, n, None, arrays=False)
                              for r, n in zip(results, names)], indent=1))
        return dict(predictions=predictions, visualization=pictures)

    @staticmethod
    def visualize(result) -> np.ndarray:
        """The picture of one result (boxes, or an overlay with a legend)."""
        title = osp.basename(result.source) if result.source else None
        if hasattr(result, 'draw'):
            return result.draw(title=title)
        return result.overlay(title=title)

    @staticmethod
    def write_coco(results: Sequence[Any], out_dir: str, names: Optional[Sequence[str]] = None,
                   category_ids=None, panoptic_dir: Optional[str] = None) -> Dict[str, str]:
        """The COCO files of ``results`` in ``out_dir`` (see :class:`CocoWriter`)."""
        from .coco_outputs import CocoWriter, image_ids_for
        sources = [r.source or f'{i + 1}' for i, r in enumerate(results)]
        names = list(names) if names else [osp.basename(s) for s in sources]
        writer = CocoWriter(out_dir, category_ids=category_ids,
                            panoptic_dir=panoptic_dir or osp.join(out_dir, 'panoptic'))
        for result, image_id, name in zip(results, image_ids_for(sources), names):
            writer.add(result, image_id, name)
        return writer.write()

    def __repr__(self) -> str:
        inner = self.detector if self.detector is not None else self.segmenter
        return f'DenseInferencer({self.kind}, {inner!r})'


# ------------------------------------------------------------------ outputs
_PICTURE_SUFFIXES = ('.png', '.jpg', '.jpeg')


def output_names(images: Sequence[ImageLike]) -> List[str]:
    """mmdet's picture names: a path's file name (``.png`` unless JPEG/PNG), an
    array's ``00000000.png`` by position; repeated names get ``_2``, ``_3``..."""
    names, used = [], set()
    for i, image in enumerate(images):
        if isinstance(image, str):
            base = osp.basename(image)
            stem, ext = osp.splitext(base)
            ext = ext if ext.lower() in _PICTURE_SUFFIXES else '.png'
        else:
            stem, ext = f'{i:08d}', '.png'
        name, k = stem + ext, 2
        while name in used:
            name, k = f'{stem}_{k}{ext}', k + 1
        used.add(name)
        names.append(name)
    return names


def prediction_dict(result, name: str, preds_dir: Optional[str] = None,
                    arrays: bool = True) -> Dict[str, Any]:
    """mmdet's per-image prediction dict (``labels``, ``scores``, ``bboxes``, RLE ``masks``,
    ``panoptic_seg``) plus the class names; written to ``preds_dir/<stem>.json`` if given.

    Label maps go to ``preds_dir/panoptic/<stem>.png`` (panopticapi's RGB ids,
    ``segments_info`` in the dict) or, for semantic results,
    ``preds_dir/sem_seg/<stem>.png`` (16-bit: 0 = no class, k + 1 = class k);
    without ``preds_dir`` they are returned as arrays (``arrays=False``: left out).
    """
    from .coco_outputs import encode_mask, panoptic_to_coco
    stem = osp.splitext(name)[0]
    out: Dict[str, Any] = dict(classes=list(result.class_names))
    task = getattr(result, 'task', 'detection' if hasattr(result, 'boxes') else 'semantic')
    out['task'] = task
    if task in ('detection', 'instance'):
        if task == 'detection':
            boxes, scores, labels = result.boxes, result.scores, result.labels
        else:
            inst = result.instances or dict(boxes=np.zeros((0, 4)), scores=np.zeros(0),
                                            labels=np.zeros(0, int), masks=[])
            boxes, scores, labels = inst['boxes'], inst['scores'], inst['labels']
            out['masks'] = [encode_mask(m) for m in inst['masks']]
        out.update(labels=[int(v) for v in labels], scores=[round(float(v), 5) for v in scores],
                   bboxes=[[round(float(c), 2) for c in b] for b in boxes])
    else:
        out['shares'] = {k: round(v, 5) for k, v in result.shares.items()}
        if task == 'panoptic':
            png, annotation = panoptic_to_coco(result, 0, stem + '.png')
            out['segments_info'] = annotation['segments_info']
            key, sub, data = 'panoptic_seg', 'panoptic', png
        else:
            data = (np.asarray(result.labels).astype(np.int32) + 1).astype(np.uint16)
            key, sub = 'sem_seg', 'sem_seg'
        if preds_dir:
            from ..utils.image_io import save_image
            out[f'{key}_path'] = save_image(osp.join(preds_dir, sub, stem + '.png'), data)
        elif arrays:
            out[key] = data
    if preds_dir:
        os.makedirs(preds_dir, exist_ok=True)
        with open(osp.join(preds_dir, stem + '.json'), 'w', encoding='utf-8') as f:
            json.dump(out, f)
    return out


__all__ = ['DenseInferencer', 'model_kind', 'resolve_config', 'output_names',
           'prediction_dict', 'KINDS']
