"""Class heatmaps: per-class score maps of an image of any size, with every cell's image box."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import Fc2ConvError
from .images import ImageLike, load_image
from .runner import as_runner

__all__ = ["Heatmap", "class_index", "heatmap"]


def class_index(classes: list[str], name: str | int) -> int:
    """Index of a class given by name or index; unknown names list the classes there are."""
    if isinstance(name, (int, np.integer)):
        if not -len(classes) <= name < len(classes):
            raise Fc2ConvError(f"class index {name} is out of range: there are {len(classes)}")
        return int(name)
    if name not in classes:
        shown = ", ".join(classes[:20]) + (" ..." if len(classes) > 20 else "")
        raise Fc2ConvError(f"no class '{name}'; pass one of: {shown}")
    return classes.index(name)


def _bilinear(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """``grid`` resampled to height×width with its corner cells on the corner pixels."""

    def positions(count: int, size: int) -> np.ndarray:
        return np.linspace(0, size - 1, count) if size > 1 else np.zeros(count)

    rows, cols = grid.shape
    by_row = np.stack([np.interp(positions(width, cols), np.arange(cols), r) for r in grid])
    return np.stack(
        [np.interp(positions(height, rows), np.arange(rows), c) for c in by_row.T], axis=1
    )


def _neighbourhood_max(grid: np.ndarray, size: int) -> np.ndarray:
    """Maximum over size×size neighbouring cells (size odd), same shape as ``grid``."""
    half = size // 2
    padded = np.pad(grid, half, mode="constant", constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    return windows.max(axis=(-2, -1))


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
        grid = self.scores[self.index(name)].astype(np.float64)
        if spread > 1:
            grid = _neighbourhood_max(grid, spread | 1)
        height, width = self.image_size
        centres = (self.boxes[..., :2] + self.boxes[..., 2:]) / 2
        top, left = centres[0, 0, 1], centres[0, 0, 0]
        bottom, right = centres[-1, -1, 1], centres[-1, -1, 0]
        span_h = max(1, round(bottom - top) + 1)
        span_w = max(1, round(right - left) + 1)
        inner = _bilinear(grid, span_h, span_w)
        pad_top = max(0, round(top))
        pad_left = max(0, round(left))
        pad_bottom = max(0, height - pad_top - span_h)
        pad_right = max(0, width - pad_left - span_w)
        full = np.pad(inner, ((pad_top, pad_bottom), (pad_left, pad_right)), mode="edge")
        return full[:height, :width].astype(np.float32)

    def top_classes(self, count: int, exclude: int | None = None) -> list[str]:
        """The ``count`` classes with the highest peaks, best first, leaving out ``exclude``
        (e.g. the background class)."""
        peaks = self.scores.reshape(len(self.classes), -1).max(1)
        order = [int(i) for i in np.argsort(-peaks, kind="stable") if int(i) != exclude]
        return [self.classes[i] for i in order[:count]]

    def peak(self, name: str | int) -> tuple[float, float, float]:
        """(x, y, score) of the best cell's box centre for one class."""
        scores = self.scores[self.index(name)]
        row, col = np.unravel_index(int(np.argmax(scores)), scores.shape)
        box = self.boxes[row, col]
        return float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2, float(scores[row, col])


def heatmap(
    model: Any,
    image: ImageLike,
    *,
    classes: list[str | int] | None = None,
    output: int | str | None = None,
    probabilities: bool = True,
) -> Heatmap:
    """Per-class maps of ``image`` (any size ≥ the model's minimum; no centre crop).

    ``model`` is a converted model, a :class:`~fc2conv.run.runner.Runner`, or an exported .onnx
    file; ``output`` chooses which of its outputs holds the class scores (default: the one that
    does, see :func:`~fc2conv.run.runner.choose_output`). Preprocessing (mean/std) comes from
    the model's metadata. ``probabilities``: class probabilities as the model defines them (its
    own softmax or sigmoid, or a softmax over raw scores); else the output as it is.
    """
    runner = as_runner(model, output)
    pixels = load_image(image)
    scores = runner.probabilities(pixels) if probabilities else runner.logits(pixels)
    rows, cols = scores.shape[-2:]
    boxes = runner.geometry.cell_boxes(rows, cols)
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
