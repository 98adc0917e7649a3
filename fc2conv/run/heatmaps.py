"""Class heatmaps: per-class score maps of an image of any size over an image pyramid, with every
cell's box in the image, fused into one map per class in image pixels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from .images import ImageLike, read_image, size_json
from .pyramid import DEFAULT_MAX_SIZE, Level, pyramid
from .runner import as_runner, class_index

__all__ = ["ClassChoice", "Heatmap", "Peak", "class_members", "heatmap", "unit_scaled"]

#: a class by name or index, or a group of them summed into one map (a list, or "a,b,c")
ClassChoice = str | int | Sequence[str | int]


def _interpolation(positions: np.ndarray, count: int) -> np.ndarray:
    """A len(positions) × count matrix that interpolates linearly between ``count`` samples at
    the (fractional) sample ``positions``, holding the end samples beyond the ends."""
    positions = np.clip(positions, 0, count - 1)
    low = np.floor(positions).astype(np.int64)
    high = np.minimum(low + 1, count - 1)
    weight = positions - low
    matrix = np.zeros((len(positions), count))
    rows = np.arange(len(positions))
    np.add.at(matrix, (rows, low), 1 - weight)
    np.add.at(matrix, (rows, high), weight)
    return matrix


def _neighbourhood_max(grid: np.ndarray, size: int) -> np.ndarray:
    """Maximum over size×size neighbouring cells (size odd), same shape as ``grid``."""
    half = size // 2
    padded = np.pad(grid, half, mode="constant", constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    return windows.max(axis=(-2, -1))


def unit_scaled(values: np.ndarray) -> np.ndarray:
    """``values`` scaled to [0, 1] by their minimum and maximum as float32 (zeros where they are
    constant or hold a NaN), as wsolevaluation's ``normalize_scoremap``."""
    low, high = float(np.min(values)), float(np.max(values))
    if np.isnan(low) or np.isnan(high) or high <= low:
        return np.zeros(values.shape, np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def class_members(classes: list[str], choice: ClassChoice) -> list[int]:
    """The indices a class choice stands for: one class (name or index), or a group (a list,
    or names joined by commas where no class has that whole name)."""
    if isinstance(choice, (list, tuple)):
        return [class_index(classes, name) for name in choice]
    if isinstance(choice, str) and choice not in classes and "," in choice:
        return [class_index(classes, name.strip()) for name in choice.split(",") if name.strip()]
    return [class_index(classes, choice)]  # type: ignore[arg-type]


class Peak(NamedTuple):
    """A class's best cell: its box centre (x, y), score, box (x1, y1, x2, y2) and the scale
    it was found at (``whole_image``: in the classifier's own view of the whole image)."""

    x: float
    y: float
    score: float
    box: tuple[float, float, float, float]
    scale: float
    whole_image: bool = False


@dataclass
class Heatmap:
    """The class maps of an image of ``image_size`` (height, width) at each scale of the
    pyramid (``levels``), with the class names. ``stride`` and ``window`` are the model's, in
    the pixels of a level (divide by a level's scale for image pixels); ``probabilities`` says
    whether the scores are class probabilities or the model's raw output."""

    levels: list[Level]
    classes: list[str]
    image_size: tuple[int, int]
    stride: tuple[int, int]
    window: tuple[int, int]
    probabilities: bool = True

    @property
    def scales(self) -> tuple[float, ...]:
        return tuple(level.scale for level in self.levels)

    def index(self, name: str | int) -> int:
        return class_index(self.classes, name)

    def select(self, classes: Sequence[ClassChoice]) -> Heatmap:
        """A heatmap of the given classes only, in that order. A class is a name or an index;
        a group of them (a list, or names joined by commas, as in ``"tabby,tiger cat"``) is
        one map: the sum of its members' scores (for a softmax head, the probability that
        the window holds any of them)."""
        groups = [class_members(self.classes, choice) for choice in classes]
        names = [
            "+".join(self.classes[i] for i in members)
            if len(members) > 1
            else self.classes[members[0]]
            for members in groups
        ]
        levels = [
            Level(
                level.scale,
                np.stack([level.scores[members].sum(0) for members in groups]),
                level.boxes,
                level.whole_image,
            )
            for level in self.levels
        ]
        return replace(self, levels=levels, classes=names)

    def _level_dense(self, level: Level, grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        height, width = self.image_size
        centres = (level.boxes[..., :2] + level.boxes[..., 2:]) / 2
        (left, top), (right, bottom) = centres[0, 0], centres[-1, -1]
        rows, cols = grid.shape
        step_y = (bottom - top) / (rows - 1) if rows > 1 else 1.0
        step_x = (right - left) / (cols - 1) if cols > 1 else 1.0
        ys = (np.arange(size[0]) + 0.5) * height / size[0]  # pixel centres, in the image
        xs = (np.arange(size[1]) + 0.5) * width / size[1]
        down = _interpolation((ys - top) / step_y, rows)
        across = _interpolation((xs - left) / step_x, cols)
        return down @ grid @ across.T

    def dense(
        self, name: str | int, spread: int = 1, size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """One class's scores over the image (H×W, float32; or ``size``, the image scaled to
        it, e.g. for a picture of a large photo), fused over the pyramid: at each
        level every cell's score sits at its box centre, interpolated linearly in between and
        held beyond; each pixel takes the maximum over the levels. ``spread`` > 1 first takes
        the maximum over ``spread``×``spread`` neighbouring cells (odd), so that sharp maps
        show as blobs of about an object's size."""
        index = self.index(name)
        size = size or self.image_size
        fused = np.full(size, -np.inf)
        for level in self.levels:
            grid = level.scores[index].astype(np.float64)
            if spread > 1:
                grid = _neighbourhood_max(grid, spread | 1)
            np.maximum(fused, self._level_dense(level, grid, size), out=fused)
        return fused.astype(np.float32)

    def _peaks(self) -> np.ndarray:
        """Every class's best score over all levels."""
        return np.max(
            [level.scores.reshape(len(self.classes), -1).max(1) for level in self.levels], 0
        )

    def top_classes(self, count: int, exclude: int | str | None = None) -> list[str]:
        """The ``count`` classes with the highest peaks, best first, leaving out ``exclude``
        (e.g. the background class, by name or index)."""
        skip = self.index(exclude) if exclude is not None else None
        order = [int(i) for i in np.argsort(-self._peaks(), kind="stable") if int(i) != skip]
        return [self.classes[i] for i in order[:count]]

    def peak(self, name: str | int) -> Peak:
        """The best cell of one class over all levels."""
        index = self.index(name)
        best = max(self.levels, key=lambda level: float(level.scores[index].max()))
        scores = best.scores[index]
        row, col = np.unravel_index(int(np.argmax(scores)), scores.shape)
        box = tuple(float(v) for v in best.boxes[row, col])
        centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        score = float(scores[row, col])
        return Peak(centre_x, centre_y, score, box, best.scale, best.whole_image)  # type: ignore[arg-type]

    def as_dict(
        self,
        classes: Sequence[str | int] | None = None,
        top: int = 5,
        exclude: int | str | None = None,
    ) -> dict[str, Any]:
        """The heatmap as JSON-ready data: image size, the model's stride and window, each
        level's scale and map size, the ``top`` classes with their peak scores (leaving out
        ``exclude``, the background class, as :meth:`top_classes` does), and each chosen
        class's peak (score, centre, box, scale)."""
        best = self._peaks()
        chosen = self.select(classes) if classes is not None else self
        peaks = {}
        for name in chosen.classes:
            peak = chosen.peak(name)
            peaks[name] = {
                "score": round(peak.score, 4),
                "x": round(peak.x, 1),
                "y": round(peak.y, 1),
                "box": [round(v, 1) for v in peak.box],
                "scale": round(peak.scale, 4),
                **({"whole_image": True} if peak.whole_image else {}),
            }
        return {
            "image_size": size_json(*self.image_size),
            "scores": "probabilities" if self.probabilities else "model output",
            "stride": list(self.stride),
            "window": list(self.window),
            "levels": [
                {
                    "scale": round(level.scale, 4),
                    "map_size": list(level.scores.shape[1:]),
                    **({"whole_image": True} if level.whole_image else {}),
                }
                for level in self.levels
            ],
            "top": [
                {"class": name, "score": round(float(best[self.index(name)]), 4)}
                for name in self.top_classes(top, exclude)
            ],
            "peaks": peaks,
        }


def heatmap(
    model: Any,
    image: ImageLike,
    *,
    classes: Sequence[ClassChoice] | None = None,
    scales: Sequence[float] | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    output: int | str | None = None,
    probabilities: bool | None = None,
    image_size: tuple[int, int] | None = None,
) -> Heatmap:
    """Per-class maps of ``image`` over an image pyramid (no centre crop).

    ``scales`` are the sizes the image is run at, relative to it; the default (for a
    window-mode model) goes from 2× (objects of half a window) down to the scale at which the
    image is one window, in steps of √2 (see :func:`~fc2conv.run.pyramid.pyramid_scales`);
    ``scales=(1.0,)`` gives the model's own single map. No level is larger than ``max_size`` pixels on its longer side; a larger
    image is read scaled down to it (see :func:`~fc2conv.run.images.read_image`), and peaks
    and boxes are given in the whole image's pixels. ``image_size``: the size of the image that
    ``image`` is a scaled-down copy of, if it is one.
    ``model`` is a converted model, a :class:`~fc2conv.run.runner.Runner`, or an exported .onnx
    file; ``output`` chooses which of its outputs holds the class scores (default: the one that
    does, see :func:`~fc2conv.run.runner.choose_output`). Preprocessing (mean/std) comes from
    the model's metadata. ``probabilities``: class probabilities as the model defines them (its
    own softmax or sigmoid, or a softmax over raw scores); else the output as it is. By default
    probabilities, except for a class-activation map (a model converted with ``mode="cam"``):
    there the output as it is, each cell the classifier's logits on one feature position (their
    mean is the logits; a group's map is the sum of its members', as Grad-CAM's target), run
    once on the image at its own size (CAM, computed for every class in one pass).
    """
    runner = as_runner(model, output)
    if probabilities is None:
        probabilities = not runner.cam
    pixels, size = read_image(image, max_size)
    size = image_size or size
    for choice in classes or []:  # unknown names fail before the model runs
        class_members(runner.classes, choice)
    levels = list(
        pyramid(
            runner,
            pixels,
            scales,
            step=math.sqrt(2),
            max_size=max_size,
            probabilities=probabilities,
            image_size=size,
        )
    )
    result = Heatmap(
        levels,
        list(runner.classes),
        size,
        runner.geometry.stride,
        runner.geometry.window,
        probabilities,
    )
    return result.select(classes) if classes is not None else result
