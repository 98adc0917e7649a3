"""FeatureReduction: a norm over the features (keepdims) runs over each cell's features;
dropping the feature axis is refused."""

from __future__ import annotations

import pytest
from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, refusal


@pytest.mark.parametrize("opset", [13, 18])  # axes as an attribute, as an input
def test_an_l2_normalised_vector(opset):
    weights = Weights()
    w = weights.normal("w", (4, 5))
    norm = (
        node("ReduceL2", ["f"], ["norm"], axes=[1], keepdims=1)
        if opset < 18
        else node("ReduceL2", ["f", weights.ints("axes", [-1])], ["norm"], keepdims=1)
    )
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        norm,
        node("Div", ["f", "norm"], ["unit"]),
        node("MatMul", ["unit", w], ["y"]),
    ]
    assert_cells_are_windows(classifier(head, weights, [1, 5], opset=opset))


def test_dropping_the_feature_axis_is_refused():
    weights = Weights()
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("ReduceSum", ["f", weights.ints("axes", [1])], ["y"], keepdims=0),
    ]
    message = refusal(classifier(head, weights, [1]))
    assert "node y (ReduceSum) drops the feature axis (keepdims=0)" in message
