"""A model's image path, split where the sliding window stitches, with text as an input.

Every model of this toolkit sees an image the same way: the ViTamin backbone
runs fixed-size windows (``window_fn``), :func:`sliding_window_forward`
stitches their outputs, and the model's own code goes on from the stitched
maps and the class embeddings its text tower computed. Deployment wants the
image part without the text tower (YOLO-World's and Detic's exports), and
windows whose count depends on the image size do not trace into one graph.
So the path is cut in two at the stitching step:

* the **window graph**: the model's own ``window_fn`` on ``(N, 3, S, S)``
  windows (``N`` dynamic);
* the **head graph**: everything the model does after stitching, with the
  stitched maps and the text (class embeddings, and what else the model
  derives from its vocabulary) as inputs, so the vocabulary changes without
  re-export.

Nothing is re-implemented: :func:`record_stitching` records the model's
``window_fn`` while the model runs, and :func:`stitched_inputs` makes the
model's own ``sliding_window_forward`` call return given maps, so the head
graph is traced through the model's public methods. The text is injected by
replacing, for the duration of a call, the one method each model asks for its
class embeddings (:class:`ImagePath` subclasses below).
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..backbones import sliding_window as _sw
from ..errors import ConfigError

WindowFn = Callable[[Tensor], Dict[str, Tensor]]


@dataclass
class StitchCall:
    """One ``sliding_window_forward`` call of a model: its window function and settings."""

    window_fn: WindowFn
    window: int
    stride: int
    max_windows_per_chunk: int
    names: List[str] = field(default_factory=list)


def _modules_using_stitcher() -> List[object]:
    """The loaded vitamin_dense modules that call ``sliding_window_forward`` by name."""
    real = _sw.sliding_window_forward
    return [m for name, m in list(sys.modules.items())
            if name.startswith('vitamin_dense') and m is not None
            and getattr(m, 'sliding_window_forward', None) is real]


@contextlib.contextmanager
def _replace_stitcher(replacement) -> Iterator[None]:
    modules = _modules_using_stitcher()
    real = _sw.sliding_window_forward
    for m in modules:
        setattr(m, 'sliding_window_forward', replacement)
    try:
        yield
    finally:
        for m in modules:
            setattr(m, 'sliding_window_forward', real)


@contextlib.contextmanager
def stitched_inputs(maps: Dict[str, Tensor]) -> Iterator[None]:
    """Make the model's stitching step return ``maps`` (the head graph's inputs)."""
    def given(images, *args, **kwargs):
        return dict(maps)

    with _replace_stitcher(given):
        yield


@contextlib.contextmanager
def override_method(obj: object, name: str, fn: Callable) -> Iterator[None]:
    """Shadow ``obj.name`` with ``fn`` for the duration (instance attribute, then removed)."""
    if name in vars(obj):
        raise RuntimeError(f'{type(obj).__name__}.{name} is already overridden')
    object.__setattr__(obj, name, fn)
    try:
        yield
    finally:
        object.__delattr__(obj, name)


class ImagePath:
    """How one kind of model runs an image given its text: subclasses name the seams.

    Attributes:
        kind: ``'training-free'``, ``'owl'`` or ``'fcclip'``.
        text_inputs: names of the text-derived inputs (``class_embeddings`` first).
        outputs: names of the head graph's outputs.
    """

    kind = ''
    text_inputs: Tuple[str, ...] = ('class_embeddings',)
    outputs: Tuple[str, ...] = ()
    dynamic_size = True  # one head graph for every image size

    def __init__(self, model: nn.Module):
        self.model = model.eval()

    @property
    def backbone(self):
        return self.model.backbone

    def text(self, vocabulary) -> Dict[str, Tensor]:
        """The text inputs of ``vocabulary``, computed by the model's text tower."""
        raise NotImplementedError

    @contextlib.contextmanager
    def given_text(self, text: Dict[str, Tensor]) -> Iterator[None]:
        """Make the model use ``text`` instead of asking its text tower."""
        raise NotImplementedError

    def extra_inputs(self, maps: Dict[str, Tensor],
                     image_hw: Optional[Tuple[int, int]] = None) -> Dict[str, Tensor]:
        """Inputs the head graph needs besides maps and text, computed from the sizes of
        the maps and of the images (before any padding)."""
        return {}

    def extra_axes(self, name: str) -> Dict[int, str]:
        """The dynamic axes of the extra input ``name``."""
        return {0: 'tokens'}

    @contextlib.contextmanager
    def given_extra(self, extra: Dict[str, Tensor]) -> Iterator[None]:
        yield

    def forward(self, images: Tensor) -> Dict[str, Tensor]:
        """The model's own image path on normalised ``images`` (text already injected)."""
        raise NotImplementedError

    def __call__(self, images: Tensor, text: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Reference outputs in PyTorch (what the exported graphs must reproduce)."""
        with torch.no_grad(), self.given_text(text):
            out = self.forward(images)
        return {k: out[k] for k in self.outputs if k in out}


class TrainingFreePath(ImagePath):
    """:class:`~vitamin_dense.models.TrainingFreeSegmentor`: stride-16 class logits."""

    kind = 'training-free'
    outputs = ('logits',)

    def text(self, vocabulary) -> Dict[str, Tensor]:
        return {'class_embeddings': self.model.class_embeddings(vocabulary).float()}

    @contextlib.contextmanager
    def given_text(self, text):
        emb = text['class_embeddings']
        with override_method(self.model, 'class_embeddings', lambda vocabulary=None: emb):
            yield

    def forward(self, images):
        return {'logits': self.model.compute_logits(images)}


class OwlPath(ImagePath):
    """:class:`~vitamin_dense.models.OwlDetector`: per-token boxes, class logits, objectness.

    The path is the model's own ``_run_canvas`` on images of their own size,
    as ``detect`` runs it: with ``frame_size`` the image is padded (bottom /
    right, normalised zeros) to its square box frame before the windows, so
    the outputs cover every token of that frame (``frame_side_tokens``), boxes
    normalised to it. Two constants of the sizes enter the head graph as
    inputs so that images of any size share one graph: the grid's box bias
    (``box_bias``, from :meth:`OwlDetectionHead.box_bias`; the canvas is the
    frame, so the grid's own bias is the frame's) and, for the ``'image'``
    context, the tokens it pools (``valid_tokens``, from
    :meth:`OwlDetector.valid_tokens`: the image's, not the padding's).
    """

    kind = 'owl'

    def __init__(self, model):
        super().__init__(model)
        head = model.head
        self.outputs = ('boxes', 'logits') + (('objectness',) if head.with_objectness else ())

    def text(self, vocabulary) -> Dict[str, Tensor]:
        return {'class_embeddings': self.model.encode_vocabulary(vocabulary).float()}

    @contextlib.contextmanager
    def given_text(self, text):
        yield  # the head takes its queries as an argument

    def extra_inputs(self, maps, image_hw=None):
        # the features keep the stitched s16 grid; the model's own methods give the constants
        ref = next(v for k, v in maps.items() if k in ('s16', 'merged'))
        grid = (int(ref.shape[-2]), int(ref.shape[-1]))
        like = next(iter(maps.values()))
        extra = {'box_bias': self.model.head.box_bias(grid, like)}
        if self.model.head.context == 'image':
            hw = tuple(image_hw) if image_hw is not None else (grid[0] * 16, grid[1] * 16)
            extra['valid_tokens'] = self.model.valid_tokens([hw] * ref.shape[0], grid,
                                                            ref.device)
        return extra

    def extra_axes(self, name):
        if name == 'valid_tokens':
            return {0: 'batch', 1: 'valid_tokens_height', 2: 'valid_tokens_width'}
        return super().extra_axes(name)

    @contextlib.contextmanager
    def given_extra(self, extra):
        bias = extra['box_bias']
        with contextlib.ExitStack() as stack:
            stack.enter_context(override_method(self.model.head, 'box_bias',
                                                lambda grid_hw, like, frame=None: bias))
            if 'valid_tokens' in extra:
                valid = extra['valid_tokens'].bool()
                stack.enter_context(override_method(
                    self.model, 'valid_tokens', lambda valid_hw, grid_hw, device=None: valid))
            yield

    def forward(self, images):
        raise RuntimeError('OwlPath runs with its queries: use __call__')

    def __call__(self, images, text):
        sizes = [tuple(int(v) for v in images.shape[-2:])] * images.shape[0]
        queries = text['class_embeddings']
        with torch.no_grad():
            out = self.model._run_canvas(images, sizes, queries.to(images.dtype))
        return {k: out[k] for k in self.outputs}


class FCCLIPPath(ImagePath):
    """:class:`~vitamin_dense.models.FCCLIPSegmentor`: ensembled class probabilities and masks.

    Its text inputs are the class embeddings and which classes were seen in
    training (the geometric ensemble weighs seen and unseen classes apart).
    The head graph holds for the traced image size only: the pixel decoder and
    the deformable attention carry the level sizes as Python integers
    (``_shape_list``, ``split`` sizes, per-level reference points), which the
    tracer, and ``torch.export`` alike, fix at the traced sizes. The window
    graph and the vocabulary size stay dynamic.
    """

    kind = 'fcclip'
    dynamic_size = False
    text_inputs = ('class_embeddings', 'seen_classes')
    outputs = ('class_probs', 'mask_logits')

    def text(self, vocabulary) -> Dict[str, Tensor]:
        self.model.set_vocabulary(vocabulary, 'test')
        return {'class_embeddings': self.model.class_embeddings('test').float(),
                'seen_classes': self.model.seen_classes().bool()}

    @contextlib.contextmanager
    def given_text(self, text):
        emb, seen = text['class_embeddings'], text['seen_classes'].bool()
        with override_method(self.model, 'class_embeddings', lambda mode='test': emb), \
                override_method(self.model, 'seen_classes', lambda: seen):
            yield

    def forward(self, images):
        return self.model._forward(images)


def image_path(model: nn.Module) -> ImagePath:
    """The :class:`ImagePath` of a model instance."""
    from ..models import FCCLIPSegmentor, OwlDetector, TrainingFreeSegmentor
    for cls, path in ((TrainingFreeSegmentor, TrainingFreePath), (OwlDetector, OwlPath),
                      (FCCLIPSegmentor, FCCLIPPath)):
        if isinstance(model, cls):
            return path(model)
    raise ConfigError(f'no ONNX image path for a {type(model).__name__}: export a '
                      'TrainingFreeSegmentor, an OwlDetector or an FCCLIPSegmentor')


def record_stitching(path: ImagePath, images: Tensor, text: Dict[str, Tensor]
                     ) -> Tuple[StitchCall, Dict[str, Tensor]]:
    """Run the path once; return its stitching call and the stitched maps it produced."""
    calls: List[StitchCall] = []
    maps: Dict[str, Tensor] = {}
    real = _sw.sliding_window_forward

    def keep(images_, window_fn, window, stride, chunk=16, progress=False):
        out = real(images_, window_fn, window, stride, chunk, progress=False)
        maps.update(out)
        calls.append(StitchCall(window_fn, int(window), int(stride), int(chunk), sorted(out)))
        return out

    with _replace_stitcher(keep):
        path(images, text)
    if len(calls) != 1:
        raise ConfigError(f'the {path.kind} image path stitched windows {len(calls)} times; '
                          'the ONNX split supports exactly one sliding-window pass')
    return calls[0], maps


__all__ = ['ImagePath', 'TrainingFreePath', 'OwlPath', 'FCCLIPPath', 'image_path', 'StitchCall',
           'record_stitching', 'stitched_inputs', 'override_method']
