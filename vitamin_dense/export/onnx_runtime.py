"""Run an exported image path with onnxruntime.

    from vitamin_dense.export import OnnxImagePath
    path = OnnxImagePath('exported/')
    out = path(path.preprocess('photo.jpg'))           # the saved vocabulary
    out = path(images, {'class_embeddings': emb})      # another vocabulary, no re-export

Windows are planned and stitched by :func:`sliding_window_forward` (the same
code the PyTorch model runs), each chunk of windows going through the window
graph; the stitched maps, the text inputs and (OWL) the grid's box bias go
through the head graph. Outputs are numpy arrays named as in the manifest.
Post-processing (label maps, NMS / top-k, panoptic merging) is the caller's:
it is data-dependent and stays out of the graphs.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ..backbones import sliding_window as _sw
from ..errors import ConfigError, WeightsError
from .onnx_export import MANIFEST, VOCABULARY_FILE

ArrayLike = Union[np.ndarray, Tensor]


def _session(path: str, providers: Optional[Sequence[str]]):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ConfigError('running an exported model needs onnxruntime: pip install '
                          'onnxruntime') from exc
    if not os.path.isfile(path):
        raise WeightsError(f'exported graph not found: {path}')
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=list(providers or
                                                              ['CPUExecutionProvider']))


class OnnxImagePath:
    """An exported window graph + head graph with the text saved beside them.

    Args:
        directory: what :func:`~vitamin_dense.export.export_onnx` wrote.
        providers: onnxruntime execution providers (default: CPU).
    """

    def __init__(self, directory: str, providers: Optional[Sequence[str]] = None):
        manifest_path = os.path.join(directory, MANIFEST)
        if not os.path.isfile(manifest_path):
            raise WeightsError(f'{directory} holds no {MANIFEST}: export a model with '
                               'tools/export_onnx.py first')
        with open(manifest_path, encoding='utf-8') as f:
            self.manifest: Dict[str, Any] = json.load(f)
        self.directory = directory
        m = self.manifest
        self.kind = m['kind']
        self.window = int(m['window'])
        self.stride = int(m['stride'])
        self.max_windows_per_chunk = int(m['max_windows_per_chunk'])
        self.map_names = list(m['window_graph']['outputs'])
        self.outputs = list(m['head_graph']['outputs'])
        self.text_inputs = list(m['text_inputs'])
        self.window_session = _session(os.path.join(directory, m['window_graph']['file']),
                                       providers)
        self.head_session = _session(os.path.join(directory, m['head_graph']['file']), providers)

    # ----------------------------------------------------------------- inputs
    def preprocess(self, image) -> Tensor:
        """A path / RGB array / PIL image -> normalised ``(1, 3, H, W)`` float32."""
        from ..utils.image_io import read_image
        rgb = read_image(image)
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
        mean = torch.tensor(self.manifest['pixel_mean']).view(1, 3, 1, 1)
        std = torch.tensor(self.manifest['pixel_std']).view(1, 3, 1, 1)
        return (x - mean) / std

    def vocabulary(self) -> Dict[str, Any]:
        """The saved vocabulary: ``names``, ``classes`` (synonyms) and its text arrays."""
        with open(os.path.join(self.directory, VOCABULARY_FILE), encoding='utf-8') as f:
            record = json.load(f)
        record['text'] = {name: np.load(os.path.join(self.directory, fname), allow_pickle=False)
                          for name, fname in record['files'].items()}
        return record

    # ---------------------------------------------------------------- running
    def stitched(self, images: ArrayLike) -> Dict[str, Tensor]:
        """Window graph over sliding windows, stitched: ``{map name: (B, C, h, w)}``."""
        images = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor)
                                 else images).float()
        if images.dim() != 4 or images.shape[1] != 3:
            raise ConfigError(f'images must be normalised (B, 3, H, W), got '
                              f'{tuple(images.shape)}')

        def window_fn(windows: Tensor) -> Dict[str, Tensor]:
            outs = self.window_session.run(None, {'windows': windows.numpy()})
            return {n: torch.from_numpy(o) for n, o in zip(self.map_names, outs)}

        return _sw.sliding_window_forward(images, window_fn, self.window, self.stride,
                                          self.max_windows_per_chunk)

    def extra_inputs(self, maps: Dict[str, Tensor]) -> Dict[str, np.ndarray]:
        """Inputs derived from the grid size (OWL: the box bias of the token grid)."""
        extra = {}
        if 'box_bias' in self.manifest.get('extra_inputs', []):
            from ..models.owl.heads import grid_box_bias
            grid = next(v for k, v in maps.items() if k in ('s16', 'merged')).shape[-2:]
            extra['box_bias'] = grid_box_bias(int(grid[0]), int(grid[1]),
                                              self.manifest['box_anchor']).numpy()
        return extra

    def __call__(self, images: ArrayLike, text: Optional[Dict[str, ArrayLike]] = None
                 ) -> Dict[str, np.ndarray]:
        """Outputs of the head graph for normalised ``images`` (B, 3, H, W).

        ``text``: ``{'class_embeddings': (K, E), ...}`` (any ``K``); default:
        the vocabulary saved with the export.
        """
        if text is None:
            text = self.vocabulary()['text']
        missing = [n for n in self.text_inputs if n not in text]
        if missing:
            raise ConfigError(f"text inputs missing: {', '.join(missing)} (this {self.kind} "
                              f"graph takes {', '.join(self.text_inputs)})")
        fixed = self.manifest.get('fixed_size')
        if fixed is not None and list(np.shape(images)[-2:]) != list(fixed):
            raise ConfigError(f'this {self.kind} head graph was exported for {fixed[0]}x{fixed[1]} '
                              f'inputs, got {np.shape(images)[-2]}x{np.shape(images)[-1]}: pad '
                              'or resize to that size, or export again with --size H,W')
        maps = self.stitched(images)
        feed = {n: maps[n].numpy() for n in self.map_names}
        for n in self.text_inputs:
            value = np.asarray(text[n].detach().cpu() if isinstance(text[n], Tensor) else text[n])
            feed[n] = value.astype(bool) if n == 'seen_classes' else value.astype(np.float32)
        feed.update(self.extra_inputs(maps))
        # an input the model ends up not using (FC-CLIP's seen_classes without the
        # out-of-vocabulary ensemble) is pruned from the graph
        declared = {i.name for i in self.head_session.get_inputs()}
        outs = self.head_session.run(self.outputs, {k: v for k, v in feed.items()
                                                    if k in declared})
        return dict(zip(self.outputs, outs))

    def __repr__(self) -> str:
        return (f'OnnxImagePath({self.kind}, {self.manifest.get("model_name")}, window '
                f'{self.window}, stride {self.stride})')


__all__ = ['OnnxImagePath']
