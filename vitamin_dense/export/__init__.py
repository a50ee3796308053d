"""Deployment: ONNX export of a model's image path with the text computed ahead.

:func:`export_onnx` writes a window graph and a head graph (class embeddings
as an input) beside the text of a vocabulary; :class:`OnnxImagePath` runs them
with onnxruntime. ``torch.onnx`` and ``onnxruntime`` are imported only here.
"""
from .image_path import FCCLIPPath, ImagePath, OwlPath, TrainingFreePath, image_path
from .onnx_export import export_onnx, write_vocabulary
from .onnx_runtime import OnnxImagePath

__all__ = ['export_onnx', 'write_vocabulary', 'OnnxImagePath', 'ImagePath', 'TrainingFreePath',
           'OwlPath', 'FCCLIPPath', 'image_path']
