"""Binary: per-feature constants and sums of vectors run on each cell; a value computed at run
time and a constant on the flattened map are refused."""

from __future__ import annotations

import numpy as np
from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, refusal


def test_bias_scale_and_a_sum_of_branches():
    weights = Weights()
    w1, w2 = weights.normal("w1", (4, 5)), weights.normal("w2", (4, 5))
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("MatMul", ["f", w1], ["a"]),
        node("Add", [weights.normal("bias", (5,)), "a"], ["ab"]),  # bias first, as PyTorch does
        node("MatMul", ["f", w2], ["b"]),
        node("Mul", ["b", weights.normal("scale", (1, 5))], ["bs"]),
        node("Add", ["ab", "bs"], ["y"]),
    ]
    assert_cells_are_windows(classifier(head, weights, [1, 5]))


def test_a_value_computed_at_run_time_is_refused():
    weights = Weights()
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("Shape", ["g"], ["s"]),
        node("Cast", ["s"], ["sf"], to=1),
        node("Mul", ["f", "sf"], ["y"]),
    ]
    message = refusal(classifier(head, weights, [1, 4]))
    assert "node y (Mul) combines the vector with a value computed at run time" in message


def test_a_constant_on_the_flattened_map_is_refused():
    weights = Weights()
    w = weights.normal("w", (400, 5))
    head = [
        node("Flatten", ["m"], ["f"]),
        node("Add", ["f", weights.add("shift", np.ones(400, np.float32))], ["shifted"]),
        node("MatMul", ["shifted", w], ["y"]),
    ]
    message = refusal(classifier(head, weights, [1, 5]))
    assert (
        "node shifted (Add) combines the flattened feature map with a constant of more than one "
        "value; only single values commute with the flatten"
    ) in message
