"""The image pyramid: the scales an image is run at, and each level's class maps with every
cell's box in the original image's pixels.

A cell sees a window of fixed size, so an object is found best at the scale that makes it about
as large as the objects the classifier was trained on. Heatmaps and detection run the same
pyramid: from 2× (objects of half a window look like a whole one) down to the scale at which
the whole image is one window (cam mode: the canonical input), no level larger than
``max_size`` pixels on its longer side. The default pyramid ends with the classifier's own view:
the whole image resized to the canonical input (its aspect ratio not kept), one cell whose box is
the whole image, so that heatmaps and detection never miss what the plain classifier sees (the
smallest level fits only the image's tighter axis to the window).

A class-activation map (a model converted with ``mode="cam"``) has no windows to fit objects
to: by default it runs once, on the image at its own size (or scaled down to ``max_size``),
as Grad-CAM runs on the image it is given.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import Fc2ConvError, InputSizeError
from ..geometry import Geometry
from .images import as_bytes, resize_bytes
from .runner import Runner

__all__ = ["DEFAULT_MAX_SIZE", "Level", "pyramid", "pyramid_scales"]

#: the longest side, in pixels, of any image a model is run on (memory grows with it)
DEFAULT_MAX_SIZE = 2048
#: objects from half a window (seen at 2×) upwards
LARGEST_SCALE = 2.0


@dataclass
class Level:
    """One scale of the pyramid: the class maps (classes × rows × cols) of the image resized by
    ``scale``, and every cell's box (rows × cols × 4, x1 y1 x2 y2) in the original image."""

    scale: float
    scores: np.ndarray
    boxes: np.ndarray
    #: the classifier's own view: the whole image resized to the canonical input (``scale`` is
    #: then the smaller of its two axes' scales)
    whole_image: bool = False


def _smallest_scale(size: tuple[int, int], image_size: tuple[int, int]) -> float:
    """The scale at which the image is just ``size`` on its tighter axis."""
    (min_h, min_w), (height, width) = size, image_size
    return max(min_h / height, min_w / width)


def _classifier_view(geometry: Geometry) -> tuple[int, int]:
    """The smallest image the pyramid goes down to: what the classifier saw in training, its
    canonical input (in window mode also its smallest input and one window; in cam mode, where
    the model takes far smaller inputs, smaller images would shrink objects below anything
    the classifier was trained on)."""
    return (
        max(geometry.min_size[0], geometry.canonical_size[0]),
        max(geometry.min_size[1], geometry.canonical_size[1]),
    )


def _check_image(geometry: Geometry, image_size: tuple[int, int], max_size: int, name: str) -> None:
    if max_size < max(geometry.min_size):
        raise Fc2ConvError(
            f"max size {max_size} is below the model's minimal input "
            f"{geometry.min_size[0]}x{geometry.min_size[1]}; pass at least "
            f"{max(geometry.min_size)} (--max-size)"
        )
    if image_size[0] < 1 or image_size[1] < 1:
        raise InputSizeError(f"{name}: the image is empty ({image_size[0]}x{image_size[1]})")


def pyramid_scales(
    geometry: Geometry,
    image_size: tuple[int, int],
    *,
    step: float = math.sqrt(2),
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[float, ...]:
    """Scales from 2 down to the one at which the image is the classifier's canonical input (in
    window mode: a single window), largest first: the powers of ``step`` in that range, plus
    that smallest scale where it falls between two of them. Scales that would make the image
    larger than ``max_size`` on its longer side are left out, so a large image starts at the
    scale that fits it."""
    _check_image(geometry, image_size, max_size, "model")
    smallest = math.ceil(_smallest_scale(_classifier_view(geometry), image_size) * 1e4) / 1e4
    largest = math.floor(min(LARGEST_SCALE, max_size / max(image_size)) * 1e4) / 1e4
    if largest < smallest:  # the image is too small even at 2x, or too thin to fit max_size
        return (largest,)
    top = math.floor(math.log(largest) / math.log(step) + 1e-9)
    bottom = math.ceil(math.log(smallest) / math.log(step) - 1e-9)
    scales = [round(step**k, 4) for k in range(top, bottom - 1, -1)]
    if not scales or scales[0] < largest / step**0.5:
        scales.insert(0, largest)  # the image is large: start at the size that fits
    if scales[-1] > smallest * step**0.5:
        scales.append(smallest)
    return tuple(scales)


def activation_scale(image_size: tuple[int, int], max_size: int = DEFAULT_MAX_SIZE) -> float:
    """The one scale a class-activation map runs at: the image as it is, or scaled down to
    ``max_size`` on its longer side."""
    return min(1.0, math.floor(max_size / max(image_size) * 1e4) / 1e4)


def pyramid(
    runner: Runner,
    pixels: np.ndarray,
    scales: Sequence[float] | None = None,
    *,
    step: float = math.sqrt(2),
    max_size: int = DEFAULT_MAX_SIZE,
    probabilities: bool = True,
    image_size: tuple[int, int] | None = None,
    activation_once: bool = True,
) -> Iterator[Level]:
    """Run ``runner`` on ``pixels`` (H×W×3 in [0, 1]) at each scale (default:
    :func:`pyramid_scales`, then the classifier's view of the whole image; for a
    class-activation map, :attr:`~fc2conv.run.runner.Runner.cam`, the image at its own size
    only, unless ``activation_once`` is False), one level at a time. ``image_size``: the size
    of the image that ``pixels`` is a scaled-down copy of (see :func:`~fc2conv.run.images.read_image`); scales
    and boxes refer to it (default: ``pixels``' own size). A scale whose image would be smaller
    than the model's minimum is skipped; when none is left, or a scale is not positive or makes
    an image larger than ``max_size``, the error says which scales would do."""
    height, width = image_size or pixels.shape[:2]
    geometry = runner.geometry
    _check_image(geometry, (height, width), max_size, runner.name)
    once = runner.cam and activation_once
    whole_view = scales is None and not once
    if scales is None and once:
        scales = (activation_scale((height, width), max_size),)
    elif scales is None:
        scales = pyramid_scales(geometry, (height, width), step=step, max_size=max_size)
    if not scales or any(not (scale > 0) for scale in scales):
        raise Fc2ConvError(f"scales must be positive numbers, got {tuple(scales)}")
    too_large = [s for s in scales if max(round(height * s), round(width * s)) > max_size]
    if too_large:
        raise Fc2ConvError(
            f"scale {too_large[0]:g} makes the {height}x{width} image larger than the maximal "
            f"size {max_size}; use scales up to {max_size / max(height, width):.3g} or raise "
            "the maximal size"
        )
    sizes = [(max(1, round(height * s)), max(1, round(width * s))) for s in scales]
    min_h, min_w = geometry.min_size
    usable = [
        (s, size)
        for s, size in zip(scales, sizes, strict=True)
        if size[0] >= min_h and size[1] >= min_w
    ]
    if not usable:
        needed = _smallest_scale(geometry.min_size, (height, width))
        raise InputSizeError(
            f"{runner.name}: the {width}×{height} image is smaller than its {min_w}×{min_h} "
            f"minimum (width×height) at every scale ({', '.join(f'{s:g}' for s in scales)}); "
            f"add a scale of at least {needed:.2f}"
        )
    views = [(float(s), size, False) for s, size in usable]
    canonical = geometry.canonical_size
    if whole_view and all(size != canonical for _, size in usable):
        views.append((min(canonical[0] / height, canonical[1] / width), canonical, True))
    largest = max(size for _, size, _ in views)
    source = as_bytes(pixels)  # each level resized from bytes (the image at its size as it is)
    if largest[0] * largest[1] < pixels.shape[0] * pixels.shape[1]:
        source = source.resize((largest[1], largest[0]), Image.Resampling.BILINEAR)  # once
    for scale, size, whole in views:
        image = pixels if size == pixels.shape[:2] else resize_bytes(source, size)
        maps = runner.probabilities(image) if probabilities else runner.logits(image)
        boxes = geometry.cell_boxes(*maps.shape[-2:])
        boxes[..., 0::2] *= width / image.shape[1]
        boxes[..., 1::2] *= height / image.shape[0]
        yield Level(round(scale, 4), maps, boxes, whole)
