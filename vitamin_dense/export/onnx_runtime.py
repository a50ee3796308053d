"""Run an exported image path with onnxruntime.

    from vitamin_dense.export import OnnxImagePath
    path = OnnxImagePath('exported/')
    out = path(path.preprocess('photo.jpg'))           # the saved vocabulary
    out = path(images, {'class_embeddings': emb})      # another vocabulary, no re-export

The caller passes normalised images of any size (OWL, FC-CLIP's fixed size
aside). An OWL model with a square box frame (the manifest's ``frame_size``)
first has each image padded, bottom and right with normalised zeros, to its
frame (:meth:`OnnxImagePath.canvas`), as the PyTorch model pads it. Windows
are planned and stitched by :func:`sliding_window_forward` (the same code the
PyTorch model runs), each chunk of windows going through the window graph;
the stitched maps, the text inputs and (OWL) the grid's box bias and the
image's valid tokens go through the head graph. Outputs are numpy arrays named as in the manifest.
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
    @staticmethod
    def _as_images(images: ArrayLike) -> Tensor:
        images = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor)
                                 else images).float()
        if images.dim() != 4 or images.shape[1] != 3:
            raise ConfigError(f'images must be normalised (B, 3, H, W), got '
                              f'{tuple(images.shape)}')
        return images

    def frame_tokens(self, height: int, width: int) -> int:
        """OWL: side in tokens of an ``height x width`` image's square box frame.

        The boxes are ``cx, cy, w, h`` normalised to that frame (pixels:
        ``boxes_to_pixels(boxes, frame)``); the outputs cover its ``frame x frame``
        tokens with ``frame_size``, the image's own grid without.
        """
        if self.kind != 'owl':
            raise ConfigError(f'a {self.kind} export has no box frame')
        from ..models.owl.detector import frame_side_tokens
        return frame_side_tokens(height, width, self.manifest.get('frame_size'))

    def canvas(self, images: ArrayLike) -> Tensor:
        """What the windows run on: OWL with ``frame_size`` pads each image (bottom /
        right, normalised zeros) to its square frame; other models take it as it is."""
        images = self._as_images(images)
        if self.kind != 'owl' or self.manifest.get('frame_size') is None:
            return images
        h, w = images.shape[-2:]
        side = self.frame_tokens(h, w) * _sw.TOKEN_SIZE
        return torch.nn.functional.pad(images, (0, side - w, 0, side - h))

    def stitched(self, images: ArrayLike) -> Dict[str, Tensor]:
        """Window graph over sliding windows, stitched: ``{map name: (B, C, h, w)}``."""
        images = self._as_images(images)

        def window_fn(windows: Tensor) -> Dict[str, Tensor]:
            outs = self.window_session.run(None, {'windows': windows.numpy()})
            return {n: torch.from_numpy(o) for n, o in zip(self.map_names, outs)}

        return _sw.sliding_window_forward(images, window_fn, self.window, self.stride,
                                          self.max_windows_per_chunk)

    def extra_inputs(self, maps: Dict[str, Tensor], image_hw: Optional[Sequence[int]] = None
                     ) -> Dict[str, np.ndarray]:
        """Inputs derived from the sizes (OWL: the box bias of the token grid, and the
        tokens of the ``image_hw`` image inside it, default all, that the context pools)."""
        names = self.manifest.get('extra_inputs', [])
        extra = {}
        ref = next((v for k, v in maps.items() if k in ('s16', 'merged')), None)
        if ref is None:
            return extra
        grid = (int(ref.shape[-2]), int(ref.shape[-1]))
        if 'box_bias' in names:
            from ..models.owl.heads import grid_box_bias
            extra['box_bias'] = grid_box_bias(*grid, self.manifest['box_anchor']).numpy()
        if 'valid_tokens' in names:
            from ..models.owl.detector import valid_token_mask
            hw = tuple(image_hw) if image_hw is not None else (grid[0] * _sw.TOKEN_SIZE,
                                                               grid[1] * _sw.TOKEN_SIZE)
            extra['valid_tokens'] = valid_token_mask([hw] * ref.shape[0], grid).numpy()
        return extra

    def __call__(self, images: ArrayLike, text: Optional[Dict[str, ArrayLike]] = None
                 ) -> Dict[str, np.ndarray]:
        """Outputs of the head graph for normalised ``images`` (B, 3, H, W), any size.

        ``text``: ``{'class_embeddings': (K, E), ...}`` (any ``K``); default:
        the vocabulary saved with the export. OWL outputs cover the tokens of
        the square frame (:meth:`frame_tokens`); those beyond the image's own
        ``ceil(H/16) x ceil(W/16)`` are padding, which ``detect`` drops.
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
        images = self._as_images(images)
        maps = self.stitched(self.canvas(images))
        feed = {n: maps[n].numpy() for n in self.map_names}
        for n in self.text_inputs:
            value = np.asarray(text[n].detach().cpu() if isinstance(text[n], Tensor) else text[n])
            feed[n] = value.astype(bool) if n == 'seen_classes' else value.astype(np.float32)
        feed.update(self.extra_inputs(maps, tuple(images.shape[-2:])))
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
