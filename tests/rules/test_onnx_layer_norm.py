"""LayerNorm: LayerNormalization over the features of the vector (ConvNeXt's head, N×C and
N×1×1×C) runs over each cell's channels; one over more than the features is refused."""

from __future__ import annotations

import pytest
from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, refusal


@pytest.mark.parametrize("layout", ["flat", "channels_last"])
def test_layer_norm_of_the_vector(layout):
    weights = Weights()
    w = weights.normal("w", (4, 5))
    scale, bias = weights.normal("ln_s", (4,)), weights.normal("ln_b", (4,))
    if layout == "flat":
        norm = [
            node("Flatten", ["g"], ["v"]),
            node("LayerNormalization", ["v", scale, bias], ["n"]),
        ]
        tail = [node("MatMul", ["n", w], ["y"])]
    else:  # ConvNeXt's LayerNorm2d: permute, normalise the last axis, permute back
        norm = [
            node("Transpose", ["g"], ["t"], perm=[0, 2, 3, 1]),
            node("LayerNormalization", ["t", scale, bias], ["nt"], axis=-1),
            node("Transpose", ["nt"], ["n4"], perm=[0, 3, 1, 2]),
            node("Flatten", ["n4"], ["n"]),
        ]
        tail = [node("MatMul", ["n", w], ["y"])]
    head = [node("GlobalAveragePool", ["m"], ["g"]), *norm, *tail]
    assert_cells_are_windows(classifier(head, weights, [1, 5], opset=17))


def test_a_layer_norm_over_more_than_the_features_is_refused():
    weights = Weights()
    scale = weights.normal("ln_s", (1, 4))
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Flatten", ["g"], ["v"]),
        node("LayerNormalization", ["v", scale], ["y"], axis=0),
    ]
    message = refusal(classifier(head, weights, [1, 4], opset=17))
    assert "node y (LayerNormalization) normalises from axis 0 on" in message
