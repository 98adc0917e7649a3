"""The export stage: the converted model as an ONNX file with dynamic batch, height and width,
checked before it is put in place.

``torch_onnx`` (the PyTorch side) → ``onnx_file`` (the written file, without PyTorch: metadata,
assembly, checks) → ``isolated`` (the pipeline that keeps the two in separate processes, with
``worker`` as the child's entry point).
"""

from __future__ import annotations

from .isolated import ExportReport, export_onnx
from .onnx_file import SizeCheck, read_metadata

__all__ = ["ExportReport", "SizeCheck", "export_onnx", "read_metadata"]
