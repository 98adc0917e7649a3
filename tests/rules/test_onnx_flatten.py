"""Flatten: a flatten of the map (Flatten, Reshape by a constant or by a shape chain, Squeeze)
is removed and read by the next layer; flattening the batch is refused."""

from __future__ import annotations

import pytest
from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, plan_of, refusal


@pytest.mark.parametrize("spelling", ["Flatten", "Reshape", "shape_chain"])
def test_flattens_of_the_map(spelling):
    weights = Weights()
    w = weights.normal("w", (400, 5), 0.05)
    flatten = {
        "Flatten": [node("Flatten", ["m"], ["f"])],
        "Reshape": [node("Reshape", ["m", weights.ints("s", [0, -1])], ["f"])],
        "shape_chain": [  # paddle2onnx: Shape → Slice → Concat → Reshape
            node("Shape", ["m"], ["shape"]),
            node("Slice", ["shape", weights.ints("b", [0]), weights.ints("e", [1])], ["n"]),
            node("Concat", ["n", weights.ints("rest", [-1])], ["target"], axis=0),
            node("Reshape", ["m", "target"], ["f"]),
        ],
    }[spelling]
    model = classifier([*flatten, node("MatMul", ["f", w], ["y"])], weights, [1, 5])
    assert "(Reshape): removed" in plan_of(model) or "(Flatten): removed" in plan_of(model)
    assert_cells_are_windows(model)


def test_flattening_the_batch_is_refused():
    weights = Weights()
    w = weights.normal("w", (200, 5))
    reshape = node("Reshape", ["m", weights.ints("s", [2, 200])], ["f"])
    model = classifier([reshape, node("MatMul", ["f", w], ["y"])], weights, [2, 5])
    assert "node f (Reshape) flattens the batch axis with the features" in refusal(model)
