"""The run stage: class maps of images from a converted model or an exported .onnx file.

``images`` (reading) → ``runner`` (PyTorch or onnxruntime) → ``heatmaps`` / ``detection``
(with ``boxes``) → ``render`` (pictures). On an .onnx file nothing here imports PyTorch.
"""

from __future__ import annotations

from .detection import DEFAULT_SCALES, Detections, detect
from .heatmaps import Heatmap, heatmap
from .images import load_image
from .runner import Runner, as_runner, open_model

__all__ = [
    "DEFAULT_SCALES",
    "Detections",
    "Heatmap",
    "Runner",
    "as_runner",
    "detect",
    "heatmap",
    "load_image",
    "open_model",
]
