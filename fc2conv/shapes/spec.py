"""What a user of the bundled classifier's maps needs to know, without PyTorch: its classes,
input size, preprocessing and where its shipped weights are."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BOX_FRACTION", "CLASSES", "INPUT_SIZE", "MEAN", "STD", "WEIGHTS"]

CLASSES = ["background", "circle", "square", "triangle", "star", "cross"]
INPUT_SIZE = 64
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]
#: a shape's box is this fraction of the window the classifier saw it in (its longer side)
BOX_FRACTION = 0.68
#: the shipped weights (trained by ``python -m fc2conv.shapes``)
WEIGHTS = Path(__file__).parents[1] / "data" / "shapes.safetensors"
