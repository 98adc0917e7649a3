"""Non-maximum suppression and the one-object-one-label pass, against their definitions written
as plainly as possible (every pair compared)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fc2conv.run.boxes import batched_nms, box_iou, intersection
from fc2conv.run.detection import HOLDS, _suppress_contained


def random_boxes(seed: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 100, (count, 2))
    size = rng.uniform(1, 40, (count, 2))
    size[rng.random(count) < 0.1, rng.integers(0, 2)] = 0  # empty boxes too
    boxes = np.concatenate([corner, corner + size], axis=1).astype(np.float32)
    scores = rng.permutation(count).astype(np.float32) / count  # no ties
    labels = rng.integers(0, 3, count)
    return boxes, scores, labels


def nms_by_definition(boxes, scores, labels, threshold):
    order = np.argsort(-scores)
    iou = box_iou(boxes, boxes)
    kept: list[int] = []
    for i in order:
        if all(labels[k] != labels[i] or iou[k, i] <= threshold for k in kept):
            kept.append(int(i))
    return kept


@np.errstate(divide="ignore", invalid="ignore")
def contained_by_definition(boxes, scores, labels, overlap=0.6):
    order = np.argsort(-scores)
    inter = intersection(boxes, boxes)
    sizes = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    for j in order:
        if all(
            inter[i, j] / (sizes[i] + sizes[j] - inter[i, j]) < 0.5
            and inter[i, j] / sizes[j] < overlap
            and not (labels[i] == labels[j] and inter[i, j] / min(sizes[i], sizes[j]) >= HOLDS)
            for i in kept
        ):
            kept.append(int(j))
    return kept


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 80), st.floats(0, 1))
def test_nms_keeps_what_its_definition_keeps(seed: int, count: int, threshold: float) -> None:
    boxes, scores, labels = random_boxes(seed, count)
    kept = batched_nms(boxes, scores, labels, threshold)
    assert kept.tolist() == nms_by_definition(boxes, scores, labels, threshold)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 80))
def test_one_object_one_label_keeps_what_its_definition_keeps(seed: int, count: int) -> None:
    boxes, scores, labels = random_boxes(seed, count)
    kept = _suppress_contained(boxes, scores, labels)
    assert kept.tolist() == contained_by_definition(boxes, scores, labels)


def test_nms_memory_grows_with_the_boxes_not_their_square() -> None:
    """A score threshold of 0 gives ~40,000 proposals a class on a 640×480 image, 12.8 GB as
    a matrix of pairs; 10,000 would be 800 MB, compared box by box they need well under 50."""
    import tracemalloc

    boxes, scores, labels = random_boxes(1, 10_000)
    labels[:] = 0
    tracemalloc.start()
    batched_nms(boxes, scores, labels, 0.3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6
