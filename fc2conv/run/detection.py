"""Detections from class maps: every cell is a window classified at once; an image pyramid
covers object sizes, and per-class non-maximum suppression merges the windows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputSizeError
from .boxes import area, batched_nms, intersection
from .images import ImageLike, load_image, resize
from .runner import as_runner

__all__ = ["DEFAULT_SCALES", "Detections", "detect"]

DEFAULT_SCALES = (1.5, 1.25, 1.0, 0.8, 0.64, 0.5)


@dataclass
class Detections:
    boxes: np.ndarray  # N×4, x1 y1 x2 y2 in image pixels
    scores: np.ndarray  # N
    labels: np.ndarray  # N, class indices
    classes: list[str]

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
        return json.dumps(self.as_list(), indent=2)


def detect(
    model: Any,
    image: ImageLike,
    *,
    scales: tuple[float, ...] = DEFAULT_SCALES,
    score_threshold: float = 0.6,
    iou_threshold: float = 0.3,
    output: int | str | None = None,
) -> Detections:
    """Boxes, scores and labels of the objects in ``image``.

    Each scale resizes the image and runs the model once; every cell whose class probability
    (see :meth:`~fc2conv.run.runner.Runner.probabilities`; ``output`` chooses the output that
    holds the class scores) reaches ``score_threshold`` proposes its window (shrunk to the model's ``box_fraction``
    metadata, the share of a window its objects filled in training; 1 when unknown). Proposals
    are merged per class by non-maximum suppression; then a box that overlaps a better one of
    another class (IoU ≥ 0.5, or mostly inside it) is dropped: one object, one label.
    A class named in the ``background`` metadata is never reported.
    """
    runner = as_runner(model, output)
    pixels = load_image(image)
    height, width = pixels.shape[:2]
    fraction = float(runner.metadata.get("box_fraction", 1.0))
    background = runner.metadata.get("background")
    min_h, min_w = runner.geometry.min_size
    sizes = {scale: (round(height * scale), round(width * scale)) for scale in scales}
    usable = {scale: size for scale, size in sizes.items() if size[0] >= min_h and size[1] >= min_w}
    if not usable:
        needed = max(min_h / height, min_w / width)
        raise InputSizeError(
            f"{runner.name}: image {height}x{width} is smaller than the {min_h}x{min_w} minimum "
            f"at every scale of {tuple(scales)}; add a scale of at least {needed:.2f}"
        )
    all_boxes, all_scores, all_labels = [], [], []
    for scale, size in usable.items():
        probabilities = runner.probabilities(resize(pixels, size))
        rows, cols = probabilities.shape[-2:]
        cells = runner.geometry.cell_boxes(rows, cols) / scale
        centre = (cells[..., :2] + cells[..., 2:]) / 2
        half = (cells[..., 2:] - cells[..., :2]) * fraction / 2
        boxes = np.concatenate([centre - half, centre + half], axis=-1)
        for label in range(probabilities.shape[0]):
            if label == background:
                continue
            hits = probabilities[label] >= score_threshold
            if hits.any():
                all_boxes.append(boxes[hits])
                all_scores.append(probabilities[label][hits])
                all_labels.append(np.full(int(hits.sum()), label, dtype=np.int64))
    if not all_boxes:
        return Detections(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
            list(runner.classes),
        )
    boxes = np.concatenate(all_boxes).astype(np.float32)
    scores = np.concatenate(all_scores).astype(np.float32)
    labels = np.concatenate(all_labels)
    keep = batched_nms(boxes, scores, labels, iou_threshold)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = _suppress_contained(boxes, scores)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return Detections(boxes, scores, labels, list(runner.classes))


def _suppress_contained(boxes: np.ndarray, scores: np.ndarray, overlap: float = 0.6) -> np.ndarray:
    """Indices of boxes kept after dropping any box (of any class) that overlaps a better one by
    IoU ≥ 0.5 or lies mostly (``overlap`` of its area) inside it: one object, one label."""
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order]
    inter = intersection(boxes, boxes)
    sizes = area(boxes)
    iou = inter / (sizes[:, None] + sizes[None, :] - inter)
    inside = inter / sizes[None, :]  # share of box j inside box i
    kept: list[int] = []
    for j in range(len(boxes)):
        if all(iou[i, j] < 0.5 and inside[i, j] < overlap for i in kept):
            kept.append(j)
    return order[np.array(kept, dtype=np.int64)]
