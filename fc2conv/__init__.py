"""fc2conv: turn a trained image classifier into an exactly equivalent fully convolutional network.

The public names are imported on first use, so that ``import fc2conv`` and the parts that only
read ONNX files (``fc2conv.onnx_file``, the export command's checking step) do not load PyTorch.
"""

from __future__ import annotations

import importlib
import sys
import types
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
    from .convert import FullyConvolutionalModel, Plan, convert, plan
    from .detect import Detections, detect
    from .export import ExportReport, export_onnx
    from .heatmap import Heatmap, heatmap
    from .onnx_file import read_metadata
    from .verify import VerifyReport, verify

__version__ = "0.1.0"

_LAZY = {
    "FullyConvolutionalModel": "convert",
    "Plan": "convert",
    "convert": "convert",
    "plan": "convert",
    "Detections": "detect",
    "detect": "detect",
    "ExportReport": "export",
    "export_onnx": "export",
    "Heatmap": "heatmap",
    "heatmap": "heatmap",
    "read_metadata": "onnx_file",
    "VerifyReport": "verify",
    "verify": "verify",
}


class _Package(types.ModuleType):
    """Keeps ``fc2conv.convert`` (and the other names above) the function: importing the
    submodule of the same name would otherwise put the module there."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:  # a submodule, such as fc2conv.models
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'fc2conv' has no attribute {name!r}") from None
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
