"""BatchNorm: a batch norm of the vector runs on each cell; one of the flattened map is refused."""

from __future__ import annotations

import numpy as np
from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, refusal


def statistics(weights: Weights, count: int) -> list[str]:
    scale = weights.add("bn_s", np.linspace(0.5, 1.5, count, dtype=np.float32))
    variance = weights.add("bn_v", np.linspace(0.5, 2.0, count, dtype=np.float32))
    return [scale, weights.normal("bn_b", (count,)), weights.normal("bn_m", (count,)), variance]


def test_batch_norm_of_the_vector():
    weights = Weights()
    w = weights.normal("w", (4, 5))
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("BatchNormalization", ["f", *statistics(weights, 4)], ["n"]),
        node("MatMul", ["n", w], ["y"]),
    ]
    assert_cells_are_windows(classifier(head, weights, [1, 5]))


def test_batch_norm_of_the_flattened_map_is_refused():
    weights = Weights()
    w = weights.normal("w", (400, 5))
    head = [
        node("Flatten", ["m"], ["f"]),
        node("BatchNormalization", ["f", *statistics(weights, 400)], ["n"]),
        node("MatMul", ["n", w], ["y"]),
    ]
    assert "node n (BatchNormalization) normalises each flattened feature" in refusal(
        classifier(head, weights, [1, 5])
    )
