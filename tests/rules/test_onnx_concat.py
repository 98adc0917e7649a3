"""Concat: average and max pooling side by side join along each cell's features; a join along
another axis is refused."""

from __future__ import annotations

from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, refusal


def test_average_and_max_pooling_side_by_side():
    weights = Weights()
    w = weights.normal("w", (8, 5))
    head = [
        node("GlobalAveragePool", ["m"], ["a"]),
        node("GlobalMaxPool", ["m"], ["b"]),
        node("Concat", ["a", "b"], ["g"], axis=1),
        node("Flatten", ["g"], ["f"]),
        node("MatMul", ["f", w], ["y"]),
    ]
    assert_cells_are_windows(classifier(head, weights, [1, 5]))


def test_a_join_along_the_batch_is_refused():
    weights = Weights()
    head = [
        node("GlobalAveragePool", ["m"], ["a"]),
        node("GlobalMaxPool", ["m"], ["b"]),
        node("Concat", ["a", "b"], ["y"], axis=0),
    ]
    message = refusal(classifier(head, weights, [2, 4, 1, 1]))
    assert "node y (Concat) joins vectors along another axis than the features" in message
