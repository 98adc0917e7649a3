"""Detections from class maps: every cell is a window classified at once; an image pyramid
covers object sizes, and torchvision's batched NMS merges the windows."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.ops import batched_nms

from .convert import FullyConvolutionalModel
from .errors import InputSizeError
from .inference import ImageLike, Runner, as_runner, load_image

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
    model: FullyConvolutionalModel | Runner | str | os.PathLike,
    image: ImageLike,
    *,
    scales: tuple[float, ...] = DEFAULT_SCALES,
    score_threshold: float = 0.6,
    iou_threshold: float = 0.3,
) -> Detections:
    """Boxes, scores and labels of the objects in ``image``.

    Each scale resizes the image and runs the model once; every cell whose class probability
    reaches ``score_threshold`` proposes its window (shrunk to the model's ``box_fraction``
    metadata, the share of a window its objects filled in training; 1 when unknown). Proposals
    are merged per class with ``batched_nms``; then a box that overlaps a better one of another
    class (IoU ≥ 0.5, or mostly inside it) is dropped: one object, one label.
    A class named in the ``background`` metadata is never reported.
    """
    runner = as_runner(model)
    pixels = load_image(image)
    height, width = pixels.shape[:2]
    fraction = float(runner.extra.get("box_fraction", 1.0))
    background = runner.extra.get("background")
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
        resized = pixels if size == (height, width) else _resize(pixels, size)
        probabilities = torch.from_numpy(runner.logits(resized)).softmax(0)
        rows, cols = probabilities.shape[-2:]
        cells = runner.geometry.cell_boxes(rows, cols) / scale
        centre = (cells[..., :2] + cells[..., 2:]) / 2
        half = (cells[..., 2:] - cells[..., :2]) * fraction / 2
        boxes = torch.cat([centre - half, centre + half], dim=-1)
        for label in range(probabilities.shape[0]):
            if label == background:
                continue
            hits = probabilities[label] >= score_threshold
            if hits.any():
                all_boxes.append(boxes[hits])
                all_scores.append(probabilities[label][hits])
                all_labels.append(torch.full((int(hits.sum()),), label))
    if not all_boxes:
        return Detections(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
            list(runner.classes),
        )
    boxes, scores, labels = torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_labels)
    keep = batched_nms(boxes, scores, labels, iou_threshold)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = _suppress_contained(boxes, scores)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    return Detections(boxes.numpy(), scores.numpy(), labels.numpy(), list(runner.classes))


def _suppress_contained(
    boxes: torch.Tensor, scores: torch.Tensor, overlap: float = 0.6
) -> torch.Tensor:
    """Indices of boxes kept after dropping any box (of any class) that overlaps a better one by
    IoU ≥ 0.5 or lies mostly (``overlap`` of its area) inside it: one object, one label."""
    order = torch.argsort(scores, descending=True)
    boxes = boxes[order]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    top_left = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    bottom_right = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    iou = inter / (area[:, None] + area[None, :] - inter)
    inside = inter / area[None, :]  # share of box j inside box i
    kept: list[int] = []
    for j in range(len(boxes)):
        if all(iou[i, j] < 0.5 and inside[i, j] < overlap for i in kept):
            kept.append(j)
    return order[torch.tensor(kept, dtype=torch.long)]


def _resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(np.clip(pixels * 255 + 0.5, 0, 255).astype(np.uint8))
    resized = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255
