"""Elementwise: activations on the vector (a per-feature PRelu slope reshaped) and on the
flattened map (where they commute with the flatten); a per-feature slope on the flattened map
is refused."""

from __future__ import annotations

import numpy as np
from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, refusal


def test_activations_on_the_vector_and_on_the_flattened_map():
    weights = Weights()
    w1, w2 = weights.normal("w1", (400, 6), 0.05), weights.normal("w2", (6, 5))
    slope = weights.add("slope", np.linspace(0.1, 0.4, 6, dtype=np.float32))
    head = [
        node("Flatten", ["m"], ["f"]),
        node("HardSwish", ["f"], ["fa"]),  # commutes with the flatten
        node("Dropout", ["fa"], ["fd"]),
        node("MatMul", ["fd", w1], ["h"]),
        node("PRelu", ["h", slope], ["ha"]),
        node("Clip", ["ha", weights.add("lo", np.array(-1, np.float32))], ["hc"]),
        node("MatMul", ["hc", w2], ["y"]),
    ]
    assert_cells_are_windows(classifier(head, weights, [1, 5], opset=14))


def test_a_per_feature_slope_on_the_flattened_map_is_refused():
    weights = Weights()
    w = weights.normal("w", (400, 5))
    slope = weights.add("slope", np.full(400, 0.2, np.float32))
    head = [
        node("Flatten", ["m"], ["f"]),
        node("PRelu", ["f", slope], ["fa"]),
        node("MatMul", ["fa", w], ["y"]),
    ]
    assert "node fa (PRelu) uses a parameter of shape (400,)" in refusal(
        classifier(head, weights, [1, 5])
    )
