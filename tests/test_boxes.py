"""Non-maximum suppression and the one-object-one-label pass, against their definitions written
as plainly as possible (every pair compared)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fc2conv.run.boxes import batched_nms, box_iou, intersection
from fc2conv.run.detection import EXTENT, HOLDS, INSIDE, _extents, _suppress_contained


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
def contained_by_definition(boxes, ranks, labels, same_class):
    order = np.argsort(-ranks)
    inter = intersection(boxes, boxes)
    sizes = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    for j in order:
        keep = True
        for i in kept:
            iou = inter[i, j] / (sizes[i] + sizes[j] - inter[i, j])
            inside = inter[i, j] / sizes[j]
            holds = inter[i, j] / min(sizes[i], sizes[j])
            compared = (labels[i] == labels[j]) == same_class
            clash = iou >= 0.5 or inside >= INSIDE or (same_class and holds >= HOLDS)
            keep = keep and not (compared and clash)
        keep = keep and sizes[j] > 0  # an empty box is dropped
        if keep:
            kept.append(int(j))
    return kept


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 80), st.floats(0, 1))
def test_nms_keeps_what_its_definition_keeps(seed: int, count: int, threshold: float) -> None:
    boxes, scores, labels = random_boxes(seed, count)
    kept = batched_nms(boxes, scores, labels, threshold)
    assert kept.tolist() == nms_by_definition(boxes, scores, labels, threshold)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 80), st.booleans())
def test_one_object_one_label_keeps_what_its_definition_keeps(
    seed: int, count: int, same_class: bool
) -> None:
    boxes, scores, labels = random_boxes(seed, count)
    kept = _suppress_contained(boxes, scores, labels, same_class)
    assert kept.tolist() == contained_by_definition(boxes, scores, labels, same_class)


def extents_by_definition(score, hits, centres, half):
    """Each hit cell's region grown ring by ring within the cells of EXTENT of its score."""
    boxes = []
    for row, col in zip(*np.nonzero(hits), strict=True):
        member = score >= EXTENT * score[row, col]
        region = {(int(row), int(col))}
        while True:
            grown = {
                (r, c)
                for r0, c0 in region
                for r in range(r0 - 1, r0 + 2)
                for c in range(c0 - 1, c0 + 2)
                if 0 <= r < score.shape[0] and 0 <= c < score.shape[1] and member[r, c]
            }
            if grown == region:
                break
            region = grown
        inside = np.array([centres[r, c] for r, c in sorted(region)])
        boxes.append(np.concatenate([inside.min(0) - half, inside.max(0) + half]))
    return np.array(boxes, np.float32)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 12), st.integers(1, 12), st.floats(0.05, 0.95))
def test_a_cells_box_spans_its_region_by_definition(
    seed: int, rows: int, cols: int, threshold: float
) -> None:
    rng = np.random.default_rng(seed)
    score = rng.random((rows, cols)) ** rng.uniform(0.3, 3)
    if seed % 3 == 0:
        score = np.round(score, 1)  # ties at a cell's bar
    hits = score >= threshold
    ys, xs = np.meshgrid(np.arange(rows) * 8 + 3.0, np.arange(cols) * 6 + 5.0, indexing="ij")
    centres, half = np.stack([xs, ys], -1), np.array([7.0, 9.0])
    found = _extents(score, hits, centres, half)
    assert found.shape == (int(hits.sum()), 4)
    assert np.array_equal(found, extents_by_definition(score, hits, centres, half).reshape(-1, 4))


def test_a_row_of_firing_cells_gives_a_wide_box() -> None:
    score = np.zeros((3, 8))
    score[1, 1:5] = [0.5, 0.9, 0.8, 0.6]  # an object four cells wide
    score[0, 7] = 0.9  # another, two cells away
    centres = np.stack(np.meshgrid(np.arange(8) * 10.0, np.arange(3) * 10.0), -1)
    boxes = _extents(score, score >= 0.85, centres, np.array([5.0, 5.0]))
    assert boxes.tolist() == [[65, -5, 75, 5], [5, 5, 45, 15]]  # row-major: (0, 7), then (1, 2)


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
