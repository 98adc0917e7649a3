"""fc2conv: turn a trained image classifier into an exactly equivalent fully convolutional network.

The pipeline, one stage per sub-package or module, each importing only earlier ones:

    sources/ (load) → conversion/ (trace, plan, rewrite) → equivalence (verify)
    → export/ (ONNX, checked) → run/ (heatmaps, detection, pictures)

and for ONNX classifiers the same path over the ONNX graph, without PyTorch: onnx_in/.

The public names below are imported on first use, so that ``import fc2conv`` and the parts that
only read or run ONNX files do not load PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import (
    EquivalenceError,
    ExportError,
    Fc2ConvError,
    InputSizeError,
    ModelLoadError,
    TraceError,
    UnsupportedModelError,
)
from .geometry import Geometry

if TYPE_CHECKING:
    from .conversion import FullyConvolutionalModel, Plan, convert, plan
    from .equivalence import VerifyReport, verify
    from .export import ExportReport, export_onnx, read_metadata
    from .onnx_in import OnnxConversion, convert_onnx
    from .pipeline import ModelSpec, export_model, inspect_model, open_model, prepare, run_command
    from .run import Detections, Heatmap, ImageResult, detect, detect_many, heatmap, heatmap_many
    from .sources import load_model

from ._version import __version__

_LAZY = {
    "FullyConvolutionalModel": "conversion",
    "Plan": "conversion",
    "convert": "conversion",
    "plan": "conversion",
    "VerifyReport": "equivalence",
    "verify": "equivalence",
    "ExportReport": "export",
    "export_model": "pipeline",
    "export_onnx": "export",
    "read_metadata": "export",
    "OnnxConversion": "onnx_in",
    "convert_onnx": "onnx_in",
    "prepare": "pipeline",
    "open_model": "pipeline",
    "inspect_model": "pipeline",
    "run_command": "pipeline",
    "ModelSpec": "pipeline",
    "Detections": "run",
    "Heatmap": "run",
    "detect": "run",
    "heatmap": "run",
    "ImageResult": "run",
    "detect_many": "run",
    "heatmap_many": "run",
    "load_model": "sources",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fc2conv' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Detections",
    "EquivalenceError",
    "ExportError",
    "ExportReport",
    "Fc2ConvError",
    "FullyConvolutionalModel",
    "Geometry",
    "Heatmap",
    "ImageResult",
    "InputSizeError",
    "ModelLoadError",
    "ModelSpec",
    "OnnxConversion",
    "Plan",
    "TraceError",
    "UnsupportedModelError",
    "VerifyReport",
    "__version__",
    "convert",
    "convert_onnx",
    "detect",
    "detect_many",
    "errors",
    "export_model",
    "export_onnx",
    "heatmap",
    "heatmap_many",
    "inspect_model",
    "load_model",
    "open_model",
    "plan",
    "prepare",
    "read_metadata",
    "run_command",
    "verify",
]
