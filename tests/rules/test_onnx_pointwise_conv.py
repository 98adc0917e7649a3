"""PointwiseConv: a 1×1 convolution of the pooled N×C×1×1 vector is kept; a padded 3×3 one
would mix cells and is refused."""

from __future__ import annotations

from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, refusal


def test_a_pointwise_convolution_of_the_vector():
    weights = Weights()
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Conv", ["g", weights.normal("w", (5, 4, 1, 1)), weights.normal("b", (5,))], ["y"]),
    ]
    assert_cells_are_windows(classifier(head, weights, [1, 5, 1, 1]))


def test_a_padded_wide_convolution_is_refused():
    weights = Weights()
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Conv", ["g", weights.normal("w", (5, 4, 3, 3))], ["y"], pads=[1, 1, 1, 1]),
    ]
    message = refusal(classifier(head, weights, [1, 5, 1, 1]))
    assert "node y (Conv) in the classifier head has no exact convolutional form" in message
