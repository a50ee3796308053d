"""Export a model's image path to ONNX: a window graph and a head graph, text as an input.

    from vitamin_dense.export import export_onnx
    manifest = export_onnx(model, 'exported/', vocabulary='cat,dog')

writes, into the directory:

* ``window.onnx``: ``windows (N, 3, S, S)`` -> the per-window maps the model
  stitches (``N`` dynamic);
* ``head.onnx``: the stitched maps, the text inputs (``class_embeddings
  (K, E)``, ``K`` dynamic; ``seen_classes (K,)`` for FC-CLIP) and, for the
  OWL detector, the grid's ``box_bias (h*w, 4)`` and the image's
  ``valid_tokens (B, h, w)`` (the tokens its context pools) -> the model's
  raw outputs (logits, boxes, objectness, or class probabilities and mask
  logits);
* ``class_embeddings.npy`` (and ``seen_classes.npy``) with ``vocabulary.json``:
  the text computed ahead by the model's text tower (:func:`write_vocabulary`
  writes another vocabulary without re-exporting);
* ``manifest.json``: the window size, stride, pixel mean / std, input and
  output names, opset and what produced it; for OWL also ``box_anchor``,
  ``context`` and ``frame_size`` (the square box frame each image is padded
  to before the windows, null for none).

Stitching between the two graphs (and data-dependent post-processing such as
NMS, top-k or label maps) stays outside them: :class:`OnnxImagePath` runs
both with onnxruntime and stitches with :func:`sliding_window_forward`.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .image_path import ImagePath, image_path, record_stitching, stitched_inputs

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
MANIFEST = 'manifest.json'
WINDOW_GRAPH = 'window.onnx'
HEAD_GRAPH = 'head.onnx'
VOCABULARY_FILE = 'vocabulary.json'


class _WindowGraph(nn.Module):
    """The model's own window function, outputs in a fixed order."""

    def __init__(self, window_fn, names: Sequence[str], owner: nn.Module):
        super().__init__()
        self.owner = owner  # registers the weights the window function uses
        self.window_fn = window_fn
        self.names = list(names)

    def forward(self, windows: Tensor) -> Tuple[Tensor, ...]:
        out = self.window_fn(windows)
        return tuple(out[n] for n in self.names)


class _HeadGraph(nn.Module):
    """The model's own code after stitching, fed with stitched maps, text and extras."""

    def __init__(self, path: ImagePath, map_names: Sequence[str], map_strides: Dict[str, int],
                 extra_names: Sequence[str]):
        super().__init__()
        self.owner = path.model
        self.path = path
        self.map_names = list(map_names)
        self.map_strides = dict(map_strides)
        self.extra_names = list(extra_names)

    def forward(self, *inputs: Tensor) -> Tuple[Tensor, ...]:
        n_maps, n_text = len(self.map_names), len(self.path.text_inputs)
        maps = dict(zip(self.map_names, inputs[:n_maps]))
        text = dict(zip(self.path.text_inputs, inputs[n_maps:n_maps + n_text]))
        extra = dict(zip(self.extra_names, inputs[n_maps + n_text:]))
        name = self.map_names[0]
        ref = maps[name]
        stride = self.map_strides[name]
        # the model never reads pixels after stitching; a canvas of the right size stands in
        images = ref.new_zeros(ref.shape[0], 3, ref.shape[-2] * stride, ref.shape[-1] * stride)
        with stitched_inputs(maps), self.path.given_extra(extra):
            out = self.path(images, text)
        return tuple(out[k] for k in self.path.outputs)


def example_images(size: Tuple[int, int], seed: int = 0) -> Tensor:
    """A normalised ``(1, 3, H, W)`` example (smooth noise: no constant maps to trace)."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    low = torch.randn(1, 3, max(1, h // 8), max(1, w // 8), generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode='bilinear',
                                           align_corners=False)


def export_onnx(model: nn.Module, out_dir: str, vocabulary, example_size: Tuple[int, int] = None,
                opset: int = DEFAULT_OPSET, verify: bool = True,
                info: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Export ``model``'s image path (window graph + head graph) and ``vocabulary``'s text.

    Args:
        model: a TrainingFreeSegmentor, OwlDetector or FCCLIPSegmentor (eval mode, CPU).
        out_dir: directory for the graphs, the text files and ``manifest.json``.
        vocabulary: the classes whose embeddings are saved beside the graphs.
        example_size: ``(H, W)`` of the traced example (default: 1.5 x 1.25
            windows, so it spans several windows and is not square). The
            FC-CLIP head graph holds only for this size (see :class:`FCCLIPPath`).
        opset: ONNX opset.
        verify: run both graphs with onnxruntime on the example and compare
            with PyTorch (the result goes into the manifest).
        info: extra entries for the manifest (model name, config, checkpoint ...).

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).
    """
    path = image_path(model)
    backbone = path.backbone
    window = backbone.window_size
    if example_size is None:
        example_size = (window * 3 // 2, window * 5 // 4)
    os.makedirs(out_dir, exist_ok=True)
    text = path.text(vocabulary)
    images = example_images(tuple(example_size))
    call, maps = record_stitching(path, images, text)
    map_names = call.names
    strides = _map_strides(call, window)
    extra = path.extra_inputs(maps, tuple(example_size))

    win_module = _WindowGraph(call.window_fn, map_names, path.model).eval()
    example_windows = torch.cat([images[:, :, :window, :window], images[:, :, -window:, -window:]])
    _export(win_module, (example_windows,), os.path.join(out_dir, WINDOW_GRAPH), ['windows'],
            map_names, {'windows': {0: 'windows'}, **{n: {0: 'windows'} for n in map_names}},
            opset)

    head_module = _HeadGraph(path, map_names, strides, list(extra)).eval()
    head_inputs = [maps[n] for n in map_names] + [text[n] for n in path.text_inputs] + \
        [extra[n] for n in extra]
    in_names = map_names + list(path.text_inputs) + list(extra)
    dynamic: Dict[str, Dict[int, str]] = {
        n: {0: 'batch', 2: f'{n}_height', 3: f'{n}_width'} for n in map_names}
    # (K, M, E) class embeddings (FC-CLIP's synonyms per class): M varies too
    dynamic.update({n: {0: 'classes', **({1: f'{n}_synonyms'} if text[n].dim() == 3 else {})}
                    for n in path.text_inputs})
    dynamic.update({n: path.extra_axes(n) for n in extra})
    _export(head_module, tuple(head_inputs), os.path.join(out_dir, HEAD_GRAPH), in_names,
            list(path.outputs), dynamic, opset)

    manifest: Dict[str, Any] = dict(
        format='vitamin-dense-onnx/1', kind=path.kind, opset=opset,
        model_name=backbone.model_name, window=window, stride=call.stride,
        max_windows_per_chunk=call.max_windows_per_chunk,
        pixel_mean=list(backbone.pixel_mean), pixel_std=list(backbone.pixel_std),
        window_graph=dict(file=WINDOW_GRAPH, inputs=['windows'], outputs=map_names),
        head_graph=dict(file=HEAD_GRAPH, inputs=in_names, outputs=list(path.outputs)),
        map_strides=strides, text_inputs=list(path.text_inputs), extra_inputs=list(extra),
        example_size=list(example_size), torch=torch.__version__)
    if path.kind == 'owl':
        # the runtime pads each image to its square box frame (None: no padding)
        manifest.update(box_anchor=path.model.head.box_anchor,
                        frame_size=path.model.frame_size, context=path.model.head.context)
    if not path.dynamic_size:
        manifest['fixed_size'] = list(example_size)
    manifest.update(info or {})
    manifest['vocabulary'] = write_vocabulary(out_dir, text, vocabulary)
    _write_json(os.path.join(out_dir, MANIFEST), manifest)
    if verify:
        from .onnx_runtime import OnnxImagePath
        runtime = OnnxImagePath(out_dir)
        got = runtime(images, text)
        want = path(images, text)
        manifest['verified_max_abs_diff'] = {k: float(np.abs(got[k] - want[k].float().numpy())
                                                      .max()) for k in path.outputs}
        _write_json(os.path.join(out_dir, MANIFEST), manifest)
    return manifest


def _map_strides(call, window: int) -> Dict[str, int]:
    """Output stride of each stitched map (from one window of the window function)."""
    with torch.no_grad():
        out = call.window_fn(torch.zeros(1, 3, window, window))
    return {n: int(window // out[n].shape[-1]) for n in call.names}


def _export(module: nn.Module, args: Tuple[Tensor, ...], path: str, input_names: List[str],
            output_names: List[str], dynamic_axes: Dict[str, Dict[int, str]], opset: int) -> None:
    try:
        import onnx  # noqa: F401  (torch.onnx needs it)
    except ImportError as exc:
        raise ConfigError('ONNX export needs the onnx package: pip install onnx onnxruntime') \
            from exc
    tmp = path + '.tmp'
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about every Python-level shape check it folds; the
        # graphs are verified numerically on other sizes instead
        warnings.simplefilter('ignore')
        # TorchScript tracing keeps shape arithmetic on tensor sizes dynamic; torch.export
        # (dynamo=True, tried) specialises the FC-CLIP head's Python-int level sizes as well
        torch.onnx.export(module, args, tmp, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes,
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    os.replace(tmp, path)


def write_vocabulary(out_dir: str, text: Dict[str, Tensor], vocabulary) -> Dict[str, Any]:
    """Save text inputs computed ahead (``<name>.npy``) and the class names (``vocabulary.json``)."""
    from ..text import parse_vocabulary
    vocab = parse_vocabulary(vocabulary)
    files = {}
    for name, value in text.items():
        arr = value.detach().cpu().numpy()
        arr = arr.astype(np.float32) if arr.dtype.kind == 'f' else arr
        fname = f'{name}.npy'
        tmp = os.path.join(out_dir, fname + '.tmp.npy')
        np.save(tmp, arr, allow_pickle=False)
        os.replace(tmp, os.path.join(out_dir, fname))
        files[name] = fname
    record = dict(names=list(vocab.names), classes=[list(c) for c in vocab.classes], files=files)
    _write_json(os.path.join(out_dir, VOCABULARY_FILE), record)
    return dict(file=VOCABULARY_FILE, classes=len(vocab))


def _write_json(path: str, data: Dict[str, Any]) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


__all__ = ['export_onnx', 'write_vocabulary', 'example_images', 'DEFAULT_OPSET', 'MANIFEST',
           'WINDOW_GRAPH', 'HEAD_GRAPH', 'VOCABULARY_FILE']
