"""ClassAxis: softmax and log-softmax over the classes, before and after opset 13 (when Softmax
flattens every axis from ``axis`` on), normalise each cell; another axis is refused."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, refusal, run

import fc2conv


@pytest.mark.parametrize(("op", "opset", "axis"), [("Softmax", 11, 1), ("LogSoftmax", 13, -1),
                                                   ("Softmax", 9, 1)])  # fmt: skip
def test_normalises_each_cell_over_its_classes(op, opset, axis):
    weights = Weights()
    w = weights.normal("w", (5, 4, 1, 1), 3.0)
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Conv", ["g", w], ["logits"]),  # N×5×1×1
        node(op, ["logits"], ["y"], axis=axis if opset < 13 else 1),
    ]
    model = classifier(head, weights, [1, 5, 1, 1], opset=opset)
    assert_cells_are_windows(model)
    if op == "Softmax":
        converted = fc2conv.convert_onnx(model, verify=False)
        maps = run(converted.model, np.ones((1, 3, 15, 17), np.float32))[0]
        np.testing.assert_allclose(maps.sum(axis=1), 1.0, atol=1e-6)
        assert converted.outputs[0]["ending"] == "softmax"


def test_a_softmax_over_another_axis_is_refused():
    weights = Weights()
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("Softmax", ["f"], ["y"], axis=0),
    ]
    message = refusal(classifier(head, weights, [1, 4]))
    assert "node y (Softmax) normalises along axis 0, not along the classes" in message
