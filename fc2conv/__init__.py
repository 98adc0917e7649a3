"""fc2conv: turn a trained image classifier into an exactly equivalent fully convolutional network."""

from __future__ import annotations

from . import errors
from .convert import FullyConvolutionalModel, Plan, convert, plan
from .detect import Detections, detect
from .errors import (
    EquivalenceError,
    ExportError,
    Fc2ConvError,
    InputSizeError,
    ModelLoadError,
    TraceError,
    UnsupportedModelError,
)
from .export import ExportReport, export_onnx, read_metadata
from .geometry import Geometry
from .heatmap import Heatmap, heatmap
from .verify import VerifyReport, verify

__version__ = "0.1.0"

__all__ = [
    "Detections",
    "EquivalenceError",
    "ExportError",
    "ExportReport",
    "Fc2ConvError",
    "FullyConvolutionalModel",
    "Geometry",
    "Heatmap",
    "InputSizeError",
    "ModelLoadError",
    "Plan",
    "TraceError",
    "UnsupportedModelError",
    "VerifyReport",
    "__version__",
    "convert",
    "detect",
    "errors",
    "export_onnx",
    "heatmap",
    "plan",
    "read_metadata",
    "verify",
]
