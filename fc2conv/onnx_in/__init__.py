"""ONNX classifiers in: the same pipeline as for PyTorch models, over an ONNX graph, without
PyTorch.

``graph`` (load, normalise, shapes, constants) → ``rewrite`` (node by node: the trunk kept,
the head as convolutions) → ``checks`` (onnxruntime against the original) → ``convert``
(the whole path, and the written file).
"""

from __future__ import annotations

from .convert import OnnxConversion, convert_onnx

__all__ = ["OnnxConversion", "convert_onnx"]
