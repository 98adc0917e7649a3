"""Detections from class maps: every cell is a window classified at once; an image pyramid
covers object sizes, and per-class non-maximum suppression merges the windows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import Fc2ConvError, InputSizeError
from .boxes import area, batched_nms, box_iou, intersection
from .heatmaps import ClassChoice, Heatmap, class_members, unit_scaled
from .images import ImageLike, read_image, size_json
from .pyramid import DEFAULT_MAX_SIZE, Level, activation_scale, pyramid
from .runner import as_runner, class_index

__all__ = ["Detections", "detect", "detection_labels"]

#: two boxes of one class are one object when this share of the smaller lies in the other
HOLDS = 0.5
#: the share of a window's side a box spans, for a model whose metadata names none: what
#: suited an ImageNet classifier (EfficientNet-Lite0) on real photos, whose objects come with
#: their surroundings (docs/localisation.md); a model of tight crops records its own
BOX_FRACTION = 0.6
#: a box this much inside a better one (of its class, or of another) is the same object
INSIDE = 0.6
#: a cell's box spans the cells next to it (8-connected, at its scale) that score at least
#: this share of its score: an object wider than a window fires a row of windows
EXTENT = 0.5
#: proposals are ranked by score × window area ** -SMALLER_FIRST: of two windows that score
#: alike, the smaller, which fits the object more tightly, leads (on real photos the window
#: that scores best often holds the object with much of its surroundings)
SMALLER_FIRST = 0.25
#: a class-activation map's box for a detection: its region (8-connected) that holds the map's
#: highest point in the detection's box, where the map, scaled to [0, 1] over the image, is
#: above this; the threshold best for EfficientNet-Lite0's CAM boxes on the tune composites of
#: docs/localisation.md, and there the best for its detections too
CAM_REGION = 0.3
#: the longer side, in pixels, of the grid on which those regions are traced
CAM_GRID = 320


@dataclass
class Detections:
    """The boxes found in one image, best first, with how they were found."""

    boxes: np.ndarray  # N×4, x1 y1 x2 y2 in image pixels
    scores: np.ndarray  # N
    labels: np.ndarray  # N, class indices
    classes: list[str]
    settings: dict[str, Any] = field(default_factory=dict)  #: model, image size, thresholds, scales

    def __len__(self) -> int:
        return len(self.scores)

    def as_list(self) -> list[dict[str, Any]]:
        return [
            {
                "box": [round(float(v), 1) for v in box],
                "score": round(float(score), 4),
                "label": int(label),
                "class": self.classes[int(label)],
            }
            for box, score, label in zip(self.boxes, self.scores, self.labels, strict=True)
        ]

    def to_json(self) -> str:
        """The settings (model, image size, thresholds, scales) and the detections, as JSON."""
        return json.dumps({**self.settings, "detections": self.as_list()}, indent=2)


def detection_labels(
    classes: list[str], choices: Sequence[ClassChoice] | None, background: int | None = None
) -> tuple[list[str], list[tuple[int, list[int]]]]:
    """The class names that detections' labels index, and each label with the model classes
    whose probabilities it sums. Without ``choices``: every class but ``background``, each its
    own label. A single class keeps the model's index; a group (a list, or names joined by
    commas) is one label after the model's classes, named as :meth:`.Heatmap.select` names it
    (``"tabby+tiger cat"``)."""
    names = list(classes)
    if not choices:
        return names, [(i, [i]) for i in range(len(classes)) if i != background]
    labels: list[tuple[int, list[int]]] = []
    for choice in choices:
        members = sorted(set(class_members(classes, choice)))
        if len(members) == 1:
            label = members[0]
        else:
            name = "+".join(classes[i] for i in members)
            if name not in names:
                names.append(name)
            label = names.index(name)
        if label not in (known for known, _ in labels):
            labels.append((label, members))
    return names, labels


def detect(
    model: Any,
    image: ImageLike,
    *,
    scales: Sequence[float] | None = None,
    score_threshold: float = 0.6,
    iou_threshold: float = 0.3,
    max_size: int = DEFAULT_MAX_SIZE,
    output: int | str | None = None,
    image_size: tuple[int, int] | None = None,
    classes: Sequence[str | int] | None = None,
    box_fraction: float | None = None,
) -> Detections:
    """Boxes, scores and labels of the objects in ``image`` (of the ``classes`` given, by name
    or index; default: every class). A group of classes (a list, or names joined by commas, as
    in ``"tabby,tiger cat,Egyptian cat"``) is one object: its score is the sum of its members'
    probabilities (for a softmax head, the probability that the window holds any of them),
    and its label follows the model's classes in :attr:`Detections.classes` (see
    :func:`detection_labels`).

    Each scale of the image pyramid resizes the image and runs the model once; the default
    scales go from 2× (objects of half a window) down to the scale at which the image is one
    window (cam mode: the canonical input), in steps of 1.25 (see
    :func:`~fc2conv.run.pyramid.pyramid_scales`), no level larger than ``max_size`` pixels on
    its longer side, and then the classifier's own view, the whole image resized to its
    canonical input, whose one cell proposes the whole image. Every cell whose class probability (see
    :meth:`~fc2conv.run.runner.Runner.probabilities`; ``output`` chooses the output that holds
    the class scores) reaches ``score_threshold`` proposes a box: from the first to the last
    centre of the cells at its scale connected to it that score at least :data:`EXTENT` of
    its score (an object wider or taller than a window fires a row or column of them), plus
    half a window on each side, the window shrunk to ``box_fraction`` (the share of a
    window's side its objects fill; default: the model's ``box_fraction`` metadata, else
    :data:`BOX_FRACTION`). Proposals are ranked by score, of two alike the one from the
    smaller window first (:data:`SMALLER_FIRST`), and merged per class by non-maximum
    suppression and by dropping a box that shares half the smaller box's area with a better
    one of its class; then a box that overlaps one of another class with a higher score
    (IoU ≥ 0.5, or mostly inside it) is dropped: one object, one label. The class named in
    the ``background`` metadata is never reported.
    With ``classes``, only their cells propose boxes, so another class cannot suppress them.
    A class-activation map (a model converted with ``mode="cam"``) detects through the window
    model's cells: each window's logits are the mean of the map's cells it covers (exactly the
    window model's, its head being affine), and each box kept is then replaced by the region
    of its label's class-activation map (over the image at its own size) that holds the map's
    highest point in the box (see :data:`CAM_REGION`); boxes of one label that then overlap by
    IoU ≥ 0.5 are one. On real photos these boxes fit objects far better than windows do
    (docs/localisation.md); ``settings["boxes"]`` says so.
    A larger image than ``max_size`` is read scaled down to it; boxes are in the whole image's
    pixels (``image_size``: the size of the image that ``image`` is a scaled-down copy of).
    """
    for name, value in (("score", score_threshold), ("IoU", iou_threshold)):
        if not 0 <= value <= 1:
            raise Fc2ConvError(f"the {name} threshold must lie in [0, 1], got {value}")
    runner = as_runner(model, output)
    pixels, size = read_image(image, max_size)
    height, width = image_size or size
    fraction = float(
        runner.metadata.get("box_fraction", BOX_FRACTION) if box_fraction is None else box_fraction
    )
    if not 0 < fraction <= 1:
        raise Fc2ConvError(f"the box fraction must lie in (0, 1], got {fraction}")
    background = runner.metadata.get("background")
    if background is not None:
        background = class_index(runner.classes, background)
    names, targets = detection_labels(list(runner.classes), classes, background)
    all_boxes, all_scores, all_labels, all_windows = [], [], [], []
    whole = np.array([0, 0, width, height], np.float32)
    settings: dict[str, Any] = {
        "model": runner.name,
        "image_size": size_json(height, width),
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "box_fraction": fraction,
        "scales": [],
    }
    if classes:
        settings["classes"] = [names[label] for label, _ in targets]
    levels = pyramid(
        runner,
        pixels,
        scales,
        step=1.25,
        max_size=max_size,
        image_size=(height, width),
        probabilities=not runner.cam,
        activation_once=False,
    )
    activation: dict[str, Level] = {}  # a cam model's map at its one scale, if a level is it
    if runner.cam:
        settings["boxes"] = "class-activation map"
        at = activation_scale((height, width), max_size)
        levels = _windows(runner, _keeping(levels, at, activation), (height, width))
    for level in levels:
        probabilities, cells = level.scores, level.boxes
        if level.whole_image:  # the classifier's own view: its box is the whole image
            settings["whole_image"] = True
        else:
            settings["scales"].append(round(level.scale, 4))
        centres = (cells[..., :2] + cells[..., 2:]) / 2
        half = (cells[0, 0, 2:] - cells[0, 0, :2]) * fraction / 2
        window = float(np.prod(cells[0, 0, 2:] - cells[0, 0, :2]))
        for label, members in targets:
            score = (
                probabilities[members[0]] if len(members) == 1 else probabilities[members].sum(0)
            )
            hits = score >= score_threshold
            if hits.any():
                found = (
                    np.broadcast_to(whole, (int(hits.sum()), 4))
                    if level.whole_image
                    else _extents(score, hits, centres, half)
                )
                all_boxes.append(found)
                all_scores.append(score[hits])
                all_labels.append(np.full(int(hits.sum()), label, dtype=np.int64))
                all_windows.append(np.full(int(hits.sum()), window))
    if not all_boxes:
        return Detections(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
            names,
            settings,
        )
    boxes = np.concatenate(all_boxes).astype(np.float32)
    scores = np.concatenate(all_scores).astype(np.float32)
    labels = np.concatenate(all_labels)
    windows = np.concatenate(all_windows)
    rank = (scores * (windows / windows.max()) ** -SMALLER_FIRST).astype(np.float32)
    keep = batched_nms(boxes, rank, labels, iou_threshold)
    keep = keep[_suppress_contained(boxes[keep], rank[keep], labels[keep], same_class=True)]
    keep = keep[_suppress_contained(boxes[keep], scores[keep], labels[keep], same_class=False)]
    keep = keep[np.argsort(-scores[keep], kind="stable")]  # best first
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    if runner.cam:
        if "level" not in activation:  # no level of the pyramid was at that scale: one more pass
            activation["level"] = next(
                pyramid(runner, pixels, None, max_size=max_size, image_size=(height, width),
                        probabilities=False)
            )  # fmt: skip
        boxes, scores, labels = _activation_boxes(
            boxes, scores, labels, dict(targets), runner, activation["level"], (height, width)
        )
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return Detections(boxes, scores, labels, names, settings)


def _keeping(levels: Iterable[Level], scale: float, kept: dict[str, Level]) -> Iterator[Level]:
    """``levels`` as they come, keeping the one at ``scale`` (not the whole-image view)."""
    for level in levels:
        if level.scale == round(scale, 4) and not level.whole_image:
            kept["level"] = level
        yield level


def _windows(runner: Any, levels: Iterable[Level], image_size: tuple[int, int]) -> Iterator[Level]:
    """A class-activation map's levels as windows: a window's logits are the mean of the map's
    cells it covers (as many as the map has at the canonical input), which for the affine head
    of a cam model is exactly the classifier on the window; its probabilities their softmax.
    Levels smaller than a window give none; when every level is, the error says which scale
    would do."""
    rows, cols = runner.geometry.output_size(*runner.geometry.canonical_size)
    tried, windowed = [], False
    for level in levels:
        logits = level.scores.astype(np.float64)
        tried.append(level.scale)
        if logits.shape[1] < rows or logits.shape[2] < cols:
            continue
        summed = np.pad(logits.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0)))
        windows = (
            summed[:, rows:, cols:]
            - summed[:, :-rows, cols:]
            - summed[:, rows:, :-cols]
            + summed[:, :-rows, :-cols]
        ) / (rows * cols)
        shifted = np.exp(windows - windows.max(0, keepdims=True))
        probabilities = (shifted / shifted.sum(0, keepdims=True)).astype(np.float32)
        # window (i, j) is the classifier on the canonical-size crop at the first cell's corner
        # less the map's offset (in the level's pixels, scaled to the image's like the cells)
        last_row, last_col = logits.shape[1] - rows + 1, logits.shape[2] - cols + 1
        cells = level.boxes[:last_row, :last_col]
        geometry = runner.geometry
        scale = (cells[0, 0, 2:] - cells[0, 0, :2]) / np.array(geometry.window[::-1])
        corner = cells[..., :2] - np.array(geometry.offset[::-1]) * scale
        size = np.array(geometry.canonical_size[::-1]) * scale
        boxes = np.concatenate([corner, corner + size], -1).astype(np.float32)
        yield Level(level.scale, probabilities, boxes, level.whole_image)
        windowed = True
    if not windowed:
        (height, width), (min_h, min_w) = image_size, runner.geometry.canonical_size
        raise InputSizeError(
            f"{runner.name}: detection reads windows of its {min_w}×{min_h} canonical input "
            f"(width×height), and the {width}×{height} image is smaller at every scale "
            f"({', '.join(f'{s:g}' for s in tried)}); add a scale of at least "
            f"{max(min_h / height, min_w / width):.2f}"
        )


def _activation_boxes(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    members: dict[int, list[int]],
    runner: Any,
    activation: Level,
    image_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each detection's box replaced by its label's class-activation region (see
    :data:`CAM_REGION`), traced on a grid of :data:`CAM_GRID` pixels; a detection whose box
    holds no such region keeps its box. Of two boxes of one label that then overlap by IoU ≥
    0.5, the better is kept."""
    height, width = image_size
    shrink = min(1.0, CAM_GRID / max(height, width))
    grid = (max(1, round(height * shrink)), max(1, round(width * shrink)))
    heat = Heatmap(
        [activation],
        list(runner.classes),
        image_size,
        runner.geometry.stride,
        runner.geometry.window,
        probabilities=False,
    )
    scaled: dict[int, np.ndarray] = {}
    found = boxes.copy()
    for k, (box, label) in enumerate(zip(boxes, labels, strict=True)):
        label = int(label)
        if label not in scaled:
            scaled[label] = unit_scaled(heat.select([members[label]]).dense(0, size=grid))
        region = _region(scaled[label], box * shrink)
        if region is not None:
            top, bottom, left, right = region
            found[k] = [left / shrink, top / shrink, (right + 1) / shrink, (bottom + 1) / shrink]
    kept: list[int] = []
    for k in range(len(found)):  # best first
        same = [j for j in kept if labels[j] == labels[k]]
        if not same or box_iou(found[same], found[k : k + 1]).max() < 0.5:
            kept.append(k)
    return found[kept], scores[kept], labels[kept]


def _region(scaled: np.ndarray, box: np.ndarray) -> tuple[int, int, int, int] | None:
    """First and last row and column of the 8-connected region of ``scaled`` above
    CAM_REGION that holds its highest point inside ``box`` (None: no point there is above)."""
    rows, cols = scaled.shape
    x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
    x2, y2 = min(int(np.ceil(box[2])), cols), min(int(np.ceil(box[3])), rows)
    if x2 <= x1 or y2 <= y1:
        return None
    inside = scaled[y1:y2, x1:x2]
    row, col = np.unravel_index(int(np.argmax(inside)), inside.shape)
    if inside[row, col] <= CAM_REGION:
        return None
    mask = scaled > CAM_REGION
    region = np.zeros_like(mask)
    region[y1 + row, x1 + col] = True
    while True:  # grow by one pixel in every direction, within the mask, until it stops
        padded = np.pad(region, 1)
        grown = np.zeros_like(region)
        for dy in range(3):
            for dx in range(3):
                grown |= padded[dy : dy + rows, dx : dx + cols]
        grown &= mask
        if np.array_equal(grown, region):
            break
        region = grown
    found_rows, found_cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    return int(found_rows[0]), int(found_rows[-1]), int(found_cols[0]), int(found_cols[-1])


def _extents(
    score: np.ndarray, hits: np.ndarray, centres: np.ndarray, half: np.ndarray
) -> np.ndarray:
    """The box of each hit cell (row-major order): from the first to the last centre of the
    cells connected to it (8-connected) that score at least EXTENT of its score, widened by
    ``half`` a box on each side; a lone cell gives its own box.

    One pass for all of them: cells join a union-find from the best down, and each hit cell
    reads its region's bounds once every cell above its own bar has joined."""
    rows, cols = score.shape
    flat = score.ravel()
    parent = np.arange(flat.size)
    #: each region's first row, last row, first column, last column (kept at its root)
    bounds = np.stack(np.divmod(np.arange(flat.size), cols), 1).repeat(2, 1)
    joined = np.zeros(flat.size, bool)

    def root(cell: int) -> int:
        while parent[cell] != cell:
            parent[cell] = parent[parent[cell]]
            cell = int(parent[cell])
        return cell

    order = np.argsort(-flat, kind="stable")
    queries = np.flatnonzero(hits.ravel())
    extents = np.zeros((len(queries), 4), np.int64)
    added = 0
    for index in sorted(range(len(queries)), key=lambda i: -flat[queries[i]]):
        bar = EXTENT * flat[queries[index]]
        while added < flat.size and flat[order[added]] >= bar:
            cell = int(order[added])
            joined[cell] = True
            row, col = divmod(cell, cols)
            for other_row in range(max(row - 1, 0), min(row + 2, rows)):
                for other_col in range(max(col - 1, 0), min(col + 2, cols)):
                    other = other_row * cols + other_col
                    if joined[other] and (a := root(cell)) != (b := root(other)):
                        parent[b] = a
                        bounds[a, 0::2] = np.minimum(bounds[a, 0::2], bounds[b, 0::2])
                        bounds[a, 1::2] = np.maximum(bounds[a, 1::2], bounds[b, 1::2])
            added += 1
        extents[index] = bounds[root(int(queries[index]))]
    first_row, last_row, first_col, last_col = extents.T
    xs, ys = centres[0, :, 0], centres[:, 0, 1]
    return np.stack(
        [
            xs[first_col] - half[0],
            ys[first_row] - half[1],
            xs[last_col] + half[0],
            ys[last_row] + half[1],
        ],
        1,
    ).astype(np.float32)


def _suppress_contained(
    boxes: np.ndarray, ranks: np.ndarray, labels: np.ndarray, same_class: bool
) -> np.ndarray:
    """Indices of boxes kept, taken best ``ranks`` first, after dropping any box that overlaps
    a kept one by IoU ≥ 0.5 or lies mostly (:data:`INSIDE` of its area) inside it: among boxes
    of one class (``same_class``; then also a box that shares ``HOLDS`` of the smaller box's
    area with a kept one: the same object, seen by a shifted window or at a scale where it
    looks smaller or larger than the classifier's objects; two boxes of one object at IoU 0.3
    share 0.55–0.75 of the smaller one's area on real photos), or among boxes of different
    classes (one object, one label). A box without area is dropped."""
    order = np.argsort(-ranks, kind="stable")
    boxes, labels = boxes[order], labels[order]
    sizes = area(boxes)
    kept = np.zeros(0, dtype=np.int64)
    for j in range(len(boxes)):
        inter = intersection(boxes[kept], boxes[j : j + 1])[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):  # an empty box j: NaN
            iou = inter / (sizes[kept] + sizes[j] - inter)
            inside = inter / sizes[j]  # share of box j inside each kept box
            holds = inter / np.minimum(sizes[kept], sizes[j])  # share of the smaller box
        compared = (labels[kept] == labels[j]) == same_class
        clash = (iou >= 0.5) | (inside >= INSIDE) | (same_class & (holds >= HOLDS))
        if sizes[j] > 0 and not np.any(compared & clash):  # an empty box is dropped
            kept = np.append(kept, j)
    return order[kept]
