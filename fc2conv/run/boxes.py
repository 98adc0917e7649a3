"""Box arithmetic for detections, in NumPy: IoU and per-class non-maximum suppression.

Boxes are x1, y1, x2, y2 in image pixels. These few lines replace torchvision.ops so that the run
stage needs no PyTorch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["area", "batched_nms", "box_iou", "intersection"]


def intersection(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Area of every pair's overlap, shape len(first) × len(second)."""
    top_left = np.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = np.minimum(first[:, None, 2:], second[None, :, 2:])
    return np.clip(bottom_right - top_left, 0, None).prod(-1)


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
    Each kept box is compared with the boxes still standing only (as :func:`box_iou` computes
    it, one coordinate array at a time), so memory grows with the number of boxes, not its
    square."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for label in np.unique(labels):
        standing = order[labels[order] == label]
        # the standing boxes' coordinates and areas, filtered with them (cheaper than gathers)
        left, top, right, bottom = boxes[standing].T
        sizes = area(boxes[standing])
        while standing.size:
            kept.append(int(standing[0]))
            width = np.minimum(right[0], right[1:]) - np.maximum(left[0], left[1:])
            height = np.minimum(bottom[0], bottom[1:]) - np.maximum(top[0], top[1:])
            inter = np.clip(width, 0, None) * np.clip(height, 0, None)
            union = sizes[0] + sizes[1:] - inter
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
            stay = np.flatnonzero(iou <= iou_threshold) + 1
            standing, sizes = standing[stay], sizes[stay]
            left, top, right, bottom = left[stay], top[stay], right[stay], bottom[stay]
    return np.array(sorted(kept, key=lambda i: -scores[i]), dtype=np.int64)
