"""Drawn images for the bundled classifier: 64×64 training crops and cluttered scenes.

Shapes are drawn with Pillow with random size, colour, rotation, clutter, blur and noise, so the
classifier can be trained and its heatmaps and detections measured offline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .spec import CLASSES, INPUT_SIZE

__all__ = ["Scene", "draw_crop", "draw_scene"]


def _outline(shape: str, angle: float) -> list[tuple[float, float]]:
    """Unit outline of a shape, rotated by ``angle``."""
    if shape == "circle":
        points = [
            (math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * math.pi, 48, endpoint=False)
        ]
    elif shape == "square":
        points = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif shape == "triangle":
        points = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape == "star":
        points = [
            (
                (1.0 if i % 2 == 0 else 0.45) * math.cos(-math.pi / 2 + i * math.pi / 5),
                (1.0 if i % 2 == 0 else 0.45) * math.sin(-math.pi / 2 + i * math.pi / 5),
            )
            for i in range(10)
        ]
    elif shape == "cross":
        w = 0.33
        points = [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ]
    else:
        raise ValueError(shape)
    cos, sin = math.cos(angle), math.sin(angle)
    return [(x * cos - y * sin, x * sin + y * cos) for x, y in points]


def _colour(rng: np.random.Generator, avoid: tuple[int, ...] | None = None) -> tuple[int, ...]:
    while True:
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if avoid is None or sum(abs(a - b) for a, b in zip(colour, avoid, strict=True)) > 150:
            return colour


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    extent: float,
    angle: float,
    colour: tuple[int, ...],
) -> tuple[float, float, float, float]:
    """Draw a shape whose bounding box is centred at (cx, cy) with longer side ``extent``;
    return that box (x1, y1, x2, y2)."""
    points = _outline(shape, angle)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    scale = extent / max(max(xs) - min(xs), max(ys) - min(ys))
    mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    placed = [(cx + scale * (x - mx), cy + scale * (y - my)) for x, y in points]
    draw.polygon(placed, fill=colour)
    px, py = [p[0] for p in placed], [p[1] for p in placed]
    return min(px), min(py), max(px), max(py)


def _background(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, tuple]:
    base = _colour(rng)
    image = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 4 + width * height // 2000))):  # clutter: lines, specks
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if rng.random() < 0.5:
            length, angle = rng.uniform(5, 30), rng.uniform(0, math.pi)
            draw.line(
                [x, y, x + length * math.cos(angle), y + length * math.sin(angle)],
                fill=_colour(rng),
                width=int(rng.integers(1, 3)),
            )
        else:
            r = rng.uniform(1, 4)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=_colour(rng))
    return image, base


def _finish(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    noise = rng.normal(0, rng.uniform(0, 12), (image.height, image.width, 3))
    array = np.asarray(image, dtype=np.float64) + noise
    return np.clip(array, 0, 255).astype(np.uint8)


def draw_crop(rng: np.random.Generator, label: int) -> np.ndarray:
    """One 64×64 training crop of class ``label`` (0 is background), as H×W×3 uint8.

    A positive's bounding box is centred (±3 px) and its longer side is 50–85% of the crop;
    backgrounds hold clutter, shapes far off centre, and shapes too small or too large, so the
    class map peaks where a shape fills a window.
    """
    size = INPUT_SIZE
    image, base = _background(rng, size, size)
    draw = ImageDraw.Draw(image)
    centre = size / 2
    if label:
        shape = CLASSES[label]
        side = rng.uniform(0.5, 0.85) * size
        cx, cy = centre + rng.uniform(-3, 3), centre + rng.uniform(-3, 3)
        _draw_shape(draw, shape, cx, cy, side, rng.uniform(0, 2 * math.pi), _colour(rng, base))
    else:
        for _ in range(int(rng.integers(0, 3))):
            shape = CLASSES[int(rng.integers(1, len(CLASSES)))]
            case = rng.random()
            if case < 0.5:  # off centre
                side = rng.uniform(0.4, 0.9) * size
                offset = rng.uniform(0.25, 0.7, 2) * size * rng.choice([-1, 1], 2)
                cx, cy = centre + offset[0], centre + offset[1]
            elif case < 0.75:  # too small
                side = rng.uniform(0.12, 0.33) * size
                cx, cy = rng.uniform(0, size, 2)
            else:  # too large: the window sees a part of a shape
                side = rng.uniform(1.2, 2.5) * size
                cx, cy = centre + rng.uniform(-0.5, 0.5, 2) * side
            _draw_shape(draw, shape, cx, cy, side, rng.uniform(0, 2 * math.pi), _colour(rng, base))
    return _finish(image, rng)


@dataclass
class Scene:
    image: np.ndarray  # H×W×3 uint8
    boxes: np.ndarray  # N×4 float (x1, y1, x2, y2)
    labels: np.ndarray  # N, index into CLASSES


def draw_scene(
    seed: int,
    width: int = 640,
    height: int = 480,
    count: tuple[int, int] = (3, 6),
    sizes: tuple[float, float] = (30, 80),
) -> Scene:
    """A cluttered scene with several non-overlapping shapes and their boxes."""
    rng = np.random.default_rng(seed)
    image, base = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    boxes: list[tuple[float, float, float, float]] = []
    labels: list[int] = []
    for _ in range(200):
        if len(boxes) >= int(rng.integers(count[0], count[1] + 1)) and boxes:
            break
        side = min(rng.uniform(*sizes), min(width, height) / 2 - 1)
        cx, cy = rng.uniform(side, width - side), rng.uniform(side, height - side)
        if any(
            abs(cx - (b[0] + b[2]) / 2) < (side + b[2] - b[0]) / 2 + 12
            and abs(cy - (b[1] + b[3]) / 2) < (side + b[3] - b[1]) / 2 + 12
            for b in boxes
        ):
            continue
        label = int(rng.integers(1, len(CLASSES)))
        box = _draw_shape(
            draw, CLASSES[label], cx, cy, side, rng.uniform(0, 2 * math.pi), _colour(rng, base)
        )
        boxes.append(box)
        labels.append(label)
    return Scene(
        _finish(image, rng), np.array(boxes, dtype=np.float32), np.array(labels, dtype=np.int64)
    )
