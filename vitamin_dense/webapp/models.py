"""The models a web demo serves, loaded once, and one request turned into a result.

:class:`DemoModels` holds every model the server was started with (the
training-free segmenter, optionally a trained FC-CLIP segmentor and an OWL
detector); :meth:`DemoModels.predict` runs one request. The segmenters keep
their per-image feature cache and the text towers their embedding cache
across requests. Models are not re-entrant (FC-CLIP swaps its test
vocabulary, caches are plain dicts), so calls are serialised by one lock:
concurrent requests are answered in turn and never see each other's state.
"""
from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import ConfigError, ImageReadError

TASKS = ('semantic', 'panoptic', 'instance', 'boxes')
MODEL_CHOICES = ('training-free', 'trained')


@dataclass
class Request:
    """One demo request: an image, a vocabulary, a task and a model."""

    image: np.ndarray
    vocabulary: str
    task: str = 'semantic'
    model: str = 'training-free'
    threshold: Optional[float] = None
    source: str = 'upload'


@dataclass
class Reply:
    """What the page shows: the picture, the legend rows, and a JSON record to download."""

    png: bytes
    legend: List[Dict[str, Any]]
    record: Dict[str, Any]
    meta: Dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        return dict(ok=True, image='data:image/png;base64,' + base64.b64encode(self.png).decode(),
                    legend=self.legend, record=self.record, meta=self.meta)


def decode_upload(data: bytes, name: str = 'the upload') -> np.ndarray:
    """Uploaded bytes -> RGB uint8, with a one-line error for anything that is not an image."""
    from PIL import Image, UnidentifiedImageError

    from ..utils.image_io import read_image
    if not data:
        raise ImageReadError(f'{name} is empty: choose an image file (JPEG, PNG, WebP, ...)')
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        kind = 'truncated or corrupt' if not isinstance(exc, UnidentifiedImageError) else \
            'not an image'
        raise ImageReadError(f'{name} is {kind}: upload a JPEG, PNG, TIFF, BMP or WebP '
                             'image') from None
    rgb = read_image(image)
    return rgb if rgb.flags.writeable else rgb.copy()


def encode_png(rgb: np.ndarray) -> bytes:
    import cv2
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError('PNG encoding failed')
    return buf.tobytes()


def _hex(color) -> str:
    return '#' + ''.join(f'{int(c):02x}' for c in color[:3])


class DemoModels:
    """Every model of the demo, loaded once.

    Args:
        segmenter: the training-free :class:`~vitamin_dense.apis.Segmenter`.
        trained: a trained FC-CLIP model (``FCCLIPSegmentor``) or None.
        detector: an OWL :class:`~vitamin_dense.apis.Detector` or None.
        describe: one line per model for the page.
    """

    def __init__(self, segmenter, trained=None, detector=None,
                 describe: Optional[Dict[str, str]] = None):
        self.segmenter = segmenter
        self.trained = trained
        self.detector = detector
        self.describe = dict(describe or {})
        self._trained_segmenters: Dict[str, Any] = {}
        self.lock = threading.Lock()
        if trained is not None:
            from ..apis import FCCLIPPredictor, Segmenter
            for task in ('semantic', 'panoptic', 'instance'):
                predictor = FCCLIPPredictor(trained, segmenter.device, task=task)
                self._trained_segmenters[task] = Segmenter(
                    predictor=predictor, device=segmenter.device, max_side=segmenter.max_side)

    def choices(self) -> Dict[str, List[str]]:
        """``{model: [tasks]}`` this server can answer."""
        out = {'training-free': ['semantic']}
        trained = list(self._trained_segmenters)
        if self.detector is not None:
            trained.append('boxes')
        if trained:
            out['trained'] = trained
        return out

    def check(self, request: Request) -> None:
        choices = self.choices()
        if request.model not in choices:
            raise ConfigError(f"no '{request.model}' model was loaded: start the app with "
                              '--checkpoint (segmentation) or --det-checkpoint (boxes)')
        if request.task not in choices[request.model]:
            hint = {'boxes': 'boxes need the trained detector (--det-checkpoint)',
                    'semantic': '', 'panoptic': 'panoptic output needs a trained FC-CLIP '
                                                'checkpoint (--config, --checkpoint)',
                    'instance': 'instance output needs a trained FC-CLIP checkpoint '
                                '(--config, --checkpoint)'}.get(request.task, '')
            raise ConfigError(f"the {request.model} model does not do '{request.task}'"
                              f"{': ' + hint if hint else ''}; it does "
                              f"{', '.join(choices[request.model])}")

    def predict(self, request: Request) -> Reply:
        """Run one request (serialised with every other one)."""
        from ..text import parse_vocabulary
        vocab = parse_vocabulary(request.vocabulary)
        self.check(request)
        start = time.perf_counter()
        with self.lock:
            waited = time.perf_counter() - start
            if request.task == 'boxes':
                reply = self._boxes(request, vocab)
            else:
                reply = self._segment(request, vocab)
        reply.meta.update(seconds=round(time.perf_counter() - start - waited, 3),
                          queued_seconds=round(waited, 3), task=request.task,
                          model=request.model, classes=list(vocab.names))
        reply.record.update(vocabulary=[list(c) for c in vocab.classes], task=request.task,
                            model=request.model)
        return reply

    # --------------------------------------------------------------- tasks
    def _segment(self, request: Request, vocab) -> Reply:
        segmenter = self.segmenter if request.model == 'training-free' else \
            self._trained_segmenters[request.task]
        result = segmenter(request.image, vocab, threshold=request.threshold)
        picture = result.overlay(title=None)
        colors = result.colors()
        task = getattr(result, 'task', 'semantic')
        if task == 'panoptic':
            area: Dict[int, int] = {}
            count: Dict[int, int] = {}
            for s in result.segments:
                area[s['label']] = area.get(s['label'], 0) + s['area']
                count[s['label']] = count.get(s['label'], 0) + 1
            total = max(1, result.size[0] * result.size[1])
            legend = [dict(name=result.class_names[k], color=_hex(colors[k]),
                           value=f'{100 * area[k] / total:.1f}%',
                           detail=f'{count[k]} segment{"s" if count[k] > 1 else ""}')
                      for k in sorted(area, key=lambda k: -area[k])]
        elif task == 'instance':
            inst = result.instances or {'labels': np.empty(0), 'scores': np.empty(0)}
            legend = [dict(name=result.class_names[int(lab)], color=_hex(colors[int(lab)]),
                           value=f'{float(s):.2f}', detail='score')
                      for lab, s in zip(inst['labels'], inst['scores'])][:50]
        else:
            legend = [dict(name=n, color=_hex(colors[i]), value=f'{100 * s:.1f}%',
                           detail='of pixels')
                      for i, (n, s) in sorted(enumerate(result.shares.items()),
                                              key=lambda kv: -kv[1][1])]
        meta = {k: result.meta[k] for k in ('features_cached', 'windows', 'predictor')
                if k in result.meta}
        return Reply(encode_png(picture), legend, result.to_dict(), meta)

    def _boxes(self, request: Request, vocab) -> Reply:
        threshold = {} if request.threshold is None else {'threshold': request.threshold}
        result = self.detector(request.image, vocab, **threshold)
        picture = result.draw()
        from ..visualization import class_colors
        colors = class_colors(result.class_names)
        legend = [dict(name=d['name'], color=_hex(colors[d['label']]), value=f"{d['score']:.2f}",
                       detail='box ' + ', '.join(f'{v:.0f}' for v in d['box']))
                  for d in result.to_list()]
        return Reply(encode_png(picture), legend, result.to_dict(), {'boxes': len(result)})


__all__ = ['DemoModels', 'Request', 'Reply', 'decode_upload', 'encode_png', 'TASKS',
           'MODEL_CHOICES']
