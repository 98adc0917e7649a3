"""The run stage: class maps of images from a converted model or an exported .onnx file.

``images`` (reading) → ``runner`` (PyTorch or onnxruntime) → ``pyramid`` (the scales an image
runs at) → ``heatmaps`` / ``detection`` (with ``boxes``) → ``render`` (pictures); ``batch`` runs
either over many images. On an .onnx file nothing here imports PyTorch.
"""

from __future__ import annotations

from .batch import ImageResult, collect_images, detect_many, heatmap_many
from .detection import Detections, detect
from .heatmaps import Heatmap, Peak, heatmap
from .images import load_image
from .pyramid import DEFAULT_MAX_SIZE, Level, pyramid_scales
from .runner import Runner, as_runner

__all__ = [
    "DEFAULT_MAX_SIZE",
    "Detections",
    "Heatmap",
    "ImageResult",
    "Level",
    "Peak",
    "Runner",
    "as_runner",
    "collect_images",
    "detect",
    "detect_many",
    "heatmap",
    "heatmap_many",
    "load_image",
    "pyramid_scales",
]
