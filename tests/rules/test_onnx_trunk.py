"""TrunkNode and ShapeQuery: trunk nodes are kept (a Transpose moves the axes' roles, a Shape is
a shape computation); a node that changes the rank of the map is refused."""

from __future__ import annotations

from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, refusal


def test_transposed_trunk_and_shape_queries():
    weights = Weights()
    trunk = [
        node("Transpose", ["m"], ["t"], perm=[0, 3, 2, 1]),  # N×W×H×C
        node("Sigmoid", ["t"], ["ts"]),
        node("Transpose", ["ts"], ["p"], perm=[0, 3, 2, 1]),
    ]
    head = [
        node("Shape", ["p"], ["shape"]),
        node("Gather", ["shape", weights.ints("zero", 0)], ["n"], axis=0),
        node("Unsqueeze", ["n", weights.ints("axis", [0])], ["n1"]),
        node("Concat", ["n1", weights.ints("rest", [-1])], ["target"], axis=0),
        node("Reshape", ["p", "target"], ["f"]),
        node("MatMul", ["f", weights.normal("w", (400, 5), 0.05)], ["y"]),
    ]
    assert_cells_are_windows(classifier(head, weights, [1, 5], trunk=trunk))


def test_a_rank_change_in_the_trunk_is_refused():
    weights = Weights()
    trunk = [node("ReduceMean", ["m"], ["rows"], axes=[3], keepdims=0)]  # N×C×H
    head = [
        node("Flatten", ["rows"], ["f"]),
        node("MatMul", ["f", weights.normal("w", (40, 5))], ["y"]),
    ]
    message = refusal(classifier(head, weights, [1, 5], trunk=trunk))
    assert "node rows (ReduceMean) changes the rank of the feature map" in message
