"""Linear: Gemm (transB, alpha, beta) and MatMul by a constant on the flattened map (NCHW or
channels-last order) or on a vector become convolutions; a weight computed at run time, or a
MatMul along an axis without features, is refused."""

from __future__ import annotations

import numpy as np
from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, plan_of, refusal


def test_gemm_with_alpha_beta_and_transb_0_on_the_flattened_map():
    weights = Weights()
    w, b = weights.normal("w", (400, 5), 0.05), weights.normal("b", (5,))
    head = [
        node("Flatten", ["m"], ["f"]),
        node("Gemm", ["f", w, b], ["y"], alpha=0.5, beta=2.0),
    ]
    model = classifier(head, weights, [1, 5])
    assert "(Gemm): Conv 10x10, 4→5" in plan_of(model)
    assert_cells_are_windows(model)


def test_a_channels_last_flatten_reads_the_weights_in_its_order():
    weights = Weights()
    w = weights.normal("w", (400, 5), 0.05)
    head = [
        node("Transpose", ["m"], ["t"], perm=[0, 2, 3, 1]),
        node("Flatten", ["t"], ["f"]),
        node("MatMul", ["f", w], ["y"]),
    ]
    model = classifier(head, weights, [1, 5])
    assert "weights read in the NHWC order of the flatten" in plan_of(model)
    assert_cells_are_windows(model)


def test_matmul_on_a_channels_last_pooled_vector():
    """PyTorch's x.permute(0, 2, 3, 1).mean((1, 2), keepdim=True) → Linear: N×1×1×C."""
    weights = Weights()
    w = weights.normal("w", (4, 5))
    head = [
        node("Transpose", ["m"], ["t"], perm=[0, 2, 3, 1]),
        node("ReduceMean", ["t"], ["g"], axes=[1, 2], keepdims=1),
        node("MatMul", ["g", w], ["y"]),
    ]
    assert_cells_are_windows(classifier(head, weights, [1, 1, 1, 5]))


def test_a_weight_computed_at_run_time_is_refused():
    weights = Weights()
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("RandomNormal", [], ["random"], shape=[4, 5]),
        node("MatMul", ["f", "random"], ["y"]),
    ]
    message = refusal(classifier(head, weights, [1, 5]))
    assert "node y (MatMul) multiplies by a weight that is not a constant" in message


def test_a_matmul_along_the_one_sized_axis_is_refused():
    weights = Weights()
    w = weights.add("w", np.ones((1, 3), np.float32))
    head = [node("GlobalAveragePool", ["m"], ["g"]), node("MatMul", ["g", w], ["y"])]
    message = refusal(classifier(head, weights, [1, 4, 1, 3]))
    assert "node y (MatMul) multiplies the per-image vector along axis 3, which holds" in message
