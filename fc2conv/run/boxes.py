"""Box arithmetic for detections, in NumPy: IoU and per-class non-maximum suppression.

Boxes are x1, y1, x2, y2 in image pixels. These few lines replace torchvision.ops so that the run
stage needs no PyTorch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["area", "batched_nms", "box_iou", "intersection"]


def intersection(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Area of every pair's overlap, shape len(first) × len(second)."""
    a, b = first[:, None], second[None, :]
    width = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    height = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    return np.clip(width, 0, None) * np.clip(height, 0, None)


def area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair, shape len(first) × len(second)."""
    inter = intersection(first, second)
    union = area(first)[:, None] + area(second)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Indices of the boxes kept by non-maximum suppression within each label, best first:
    a box is dropped when it overlaps a better box of its label by IoU > ``iou_threshold``.
    Each kept box is compared with the boxes still standing only, so memory grows with the
    number of boxes, not its square."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for label in np.unique(labels):
        standing = order[labels[order] == label]
        corners = boxes[standing]  # filtered with ``standing`` (cheaper than a gather each time)
        while standing.size:
            kept.append(int(standing[0]))
            stay = np.flatnonzero(box_iou(corners[:1], corners[1:])[0] <= iou_threshold) + 1
            standing, corners = standing[stay], corners[stay]
    return np.array(sorted(kept, key=lambda i: -scores[i]), dtype=np.int64)
