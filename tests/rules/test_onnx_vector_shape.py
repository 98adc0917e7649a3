"""VectorShape: reshapes and transposes of the pooled vector between N×F, N×F×1×1 and N×1×1×F
(tf2onnx's Reshape → Reshape, Squeeze/Unsqueeze with axes as attribute or input) pass it on;
a reshape into something else is refused."""

from __future__ import annotations

import pytest
from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, refusal


@pytest.mark.parametrize("spelling", ["tf2onnx", "squeeze_attribute", "squeeze_input", "transpose"])
def test_vector_reshapes(spelling):
    weights = Weights()
    w = weights.normal("w", (4, 5))
    steps = {
        "tf2onnx": [  # N×C×1×1 → N×1×1×C → N×C
            node("Reshape", ["g", weights.ints("s1", [-1, 1, 1, 4])], ["v1"]),
            node("Reshape", ["v1", weights.ints("s2", [-1, 4])], ["v"]),
        ],
        "squeeze_attribute": [node("Squeeze", ["g"], ["v"], axes=[2, 3])],
        "squeeze_input": [node("Squeeze", ["g", weights.ints("axes", [2, 3])], ["v"])],
        "transpose": [
            node("Transpose", ["g"], ["v1"], perm=[0, 2, 3, 1]),
            node("Unsqueeze", ["v1", weights.ints("axes", [0])], ["v2"]),
            node("Squeeze", ["v2", weights.ints("axes0", [0, 2, 3])], ["v"]),
        ],
    }[spelling]
    opset = 11 if spelling == "squeeze_attribute" else 13
    if spelling == "squeeze_attribute":
        weights.tensors = [t for t in weights.tensors if t.name != "axes"]
    head = [node("GlobalAveragePool", ["m"], ["g"]), *steps, node("MatMul", ["v", w], ["y"])]
    assert_cells_are_windows(classifier(head, weights, [1, 5], opset=opset))


def test_a_reshape_into_something_else_is_refused():
    weights = Weights()
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Reshape", ["g", weights.ints("s", [1, 2, 2])], ["y"]),
    ]
    message = refusal(classifier(head, weights, [1, 2, 2]))
    assert "node y (Reshape) reshapes the per-image vector (1x4x1x1) to 1x2x2" in message
