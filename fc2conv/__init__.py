"""fc2conv: turn a trained image classifier into an exactly equivalent fully convolutional network."""

from __future__ import annotations

from . import errors
from .convert import FullyConvolutionalModel, Plan, convert, plan
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
from .verify import VerifyReport, verify

__version__ = "0.1.0"

__all__ = [
    "EquivalenceError",
    "ExportReport",
    "ExportError",
    "Fc2ConvError",
    "FullyConvolutionalModel",
    "Geometry",
    "InputSizeError",
    "ModelLoadError",
    "Plan",
    "TraceError",
    "UnsupportedModelError",
    "VerifyReport",
    "__version__",
    "convert",
    "errors",
    "export_onnx",
    "plan",
    "read_metadata",
    "verify",
]
