"""Class heatmaps: per-class score maps of an image of any size, with every cell's image box."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .convert import FullyConvolutionalModel
from .errors import Fc2ConvError
from .inference import ImageLike, Runner, as_runner, load_image

__all__ = ["Heatmap", "class_index", "heatmap"]


def class_index(classes: list[str], name: str | int) -> int:
    """Index of a class given by name or index; unknown names list the classes there are."""
    if isinstance(name, int):
        if not -len(classes) <= name < len(classes):
            raise Fc2ConvError(f"class index {name} is out of range: there are {len(classes)}")
        return name
    if name not in classes:
        shown = ", ".join(classes[:20]) + (" ..." if len(classes) > 20 else "")
        raise Fc2ConvError(f"no class '{name}'; pass one of: {shown}")
    return classes.index(name)


@dataclass
class Heatmap:
    """Scores (classes × rows × cols), the class names, and each cell's box (rows × cols × 4,
    x1 y1 x2 y2 in image pixels) for an image of ``image_size`` (height, width)."""

    scores: np.ndarray
    classes: list[str]
    boxes: np.ndarray
    image_size: tuple[int, int]
    stride: tuple[int, int]
    window: tuple[int, int]

    def index(self, name: str | int) -> int:
        return class_index(self.classes, name)

    def dense(self, name: str | int, spread: int = 1) -> np.ndarray:
        """One class's scores spread over the image (H×W): each cell's score sits at its box
        centre, interpolated bilinearly in between and held constant beyond. ``spread`` > 1
        first takes the maximum over ``spread``×``spread`` neighbouring cells (odd), so that
        sharp maps show as blobs of about an object's size."""
        grid = torch.from_numpy(self.scores[self.index(name)]).float()[None, None]
        if spread > 1:
            grid = F.max_pool2d(grid, spread | 1, stride=1, padding=(spread | 1) // 2)
        height, width = self.image_size
        centres = (self.boxes[..., :2] + self.boxes[..., 2:]) / 2
        top, left = centres[0, 0, 1], centres[0, 0, 0]
        bottom, right = centres[-1, -1, 1], centres[-1, -1, 0]
        span_h = max(1, round(bottom - top) + 1)
        span_w = max(1, round(right - left) + 1)
        inner = F.interpolate(grid, size=(span_h, span_w), mode="bilinear", align_corners=True)
        pad_top = max(0, round(top))
        pad_left = max(0, round(left))
        pad_bottom = max(0, height - pad_top - span_h)
        pad_right = max(0, width - pad_left - span_w)
        full = F.pad(inner, (pad_left, pad_right, pad_top, pad_bottom), mode="replicate")
        return full[0, 0, :height, :width].numpy()

    def peak(self, name: str | int) -> tuple[float, float, float]:
        """(x, y, score) of the best cell's box centre for one class."""
        scores = self.scores[self.index(name)]
        row, col = np.unravel_index(int(np.argmax(scores)), scores.shape)
        box = self.boxes[row, col]
        return float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2, float(scores[row, col])


def heatmap(
    model: FullyConvolutionalModel | Runner | str | os.PathLike,
    image: ImageLike,
    *,
    classes: list[str | int] | None = None,
    softmax: bool = True,
) -> Heatmap:
    """Per-class maps of ``image`` (any size ≥ the model's minimum; no centre crop).

    ``model`` is a converted model or an exported .onnx file. Preprocessing (mean/std) comes from
    the model's metadata. ``softmax`` turns scores into probabilities over all classes.
    """
    runner = as_runner(model)
    pixels = load_image(image)
    logits = runner.logits(pixels)
    scores = torch.from_numpy(logits).softmax(0).numpy() if softmax else logits
    rows, cols = scores.shape[-2:]
    boxes = runner.geometry.cell_boxes(rows, cols).numpy()
    names = list(runner.classes)
    if classes is not None:
        keep = [class_index(names, c) for c in classes]
        scores, names = scores[keep], [names[i] for i in keep]
    return Heatmap(
        scores,
        names,
        boxes,
        (pixels.shape[0], pixels.shape[1]),
        runner.geometry.stride,
        runner.geometry.window,
    )
