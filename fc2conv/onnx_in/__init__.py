"""ONNX classifiers in: the same pipeline as for PyTorch models, over an ONNX graph, without
PyTorch.

``graph`` (load, normalise, shapes, constants) → ``planner`` (every node to the first of
``rules.ONNX_RULES`` that matches it: the trunk kept, gates kept, the head as convolutions and
window pools; every decline collected) → ``surgery`` (the converted graph put together) →
``checks`` (onnxruntime against the original) → ``convert`` (the whole path, and the written
file). ``kinds`` names what each tensor holds.
"""

from __future__ import annotations

from .convert import OnnxConversion, convert_onnx
from .planner import OnnxPlan
from .rules import ONNX_RULES, OnnxRule

__all__ = ["ONNX_RULES", "OnnxConversion", "OnnxPlan", "OnnxRule", "convert_onnx"]
