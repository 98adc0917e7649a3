"""The ONNX planner: squeeze-and-excitation gates in every spelling stay in the trunk, every
decline is listed in one error, the class output is chosen among several, and the rule list is
the caller's to extend."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx_nodes import CHANNELS, SIZE, Weights, classifier, node, refusal, run

import fc2conv
from fc2conv import compare
from fc2conv.onnx_in import ONNX_RULES
from fc2conv.onnx_in.rules import TrunkNode


def gate(spelling: str, weights: Weights) -> list[onnx.NodeProto]:
    """Nodes from the trunk map ``m`` to ``gated`` = m × a per-image gate of m."""
    w1 = weights.normal("se_w1", (2, CHANNELS, 1, 1))
    w2 = weights.normal("se_w2", (CHANNELS, 2, 1, 1))
    if spelling == "paddle":
        return [
            node("GlobalAveragePool", ["m"], ["s0"]),
            node("Conv", ["s0", w1], ["s1"]),
            node("Relu", ["s1"], ["s2"]),
            node("Conv", ["s2", w2], ["s3"]),
            node("HardSigmoid", ["s3"], ["s"], alpha=0.2, beta=0.5),
            node("Mul", ["m", "s"], ["gated"]),
        ]
    if spelling == "reduce_mean_input":
        return [
            node("ReduceMean", ["m", weights.ints("axes", [2, 3])], ["s0"], keepdims=1),
            node("Conv", ["s0", w1], ["s1"]),
            node("HardSwish", ["s1"], ["s2"]),
            node("Conv", ["s2", w2], ["s3"]),
            node("Sigmoid", ["s3"], ["s"]),
            node("Mul", ["s", "m"], ["gated"]),
        ]
    assert spelling == "gemm"
    return [
        node("GlobalAveragePool", ["m"], ["s0"]),
        node("Flatten", ["s0"], ["s1"]),
        node("Gemm", ["s1", weights.normal("fc1", (2, CHANNELS))], ["s2"], transB=1),
        node("Relu", ["s2"], ["s3"]),
        node("Gemm", ["s3", weights.normal("fc2", (CHANNELS, 2))], ["s4"], transB=1),
        node("Sigmoid", ["s4"], ["s5"]),
        node("Reshape", ["s5", weights.ints("shape", [-1, CHANNELS, 1, 1])], ["s"]),
        node("Mul", ["m", "s"], ["gated"]),
    ]


@pytest.mark.parametrize("spelling", ["paddle", "reduce_mean_input", "gemm"])
def test_squeeze_excitation_gates_stay_in_the_trunk(spelling):
    """Only the classifier's pool becomes a window pool; the gate keeps averaging the whole
    map, so on a larger image each cell is the window mean of the gated map, classified."""
    weights = Weights()
    w = weights.normal("w", (CHANNELS, 5))
    head = [
        node("GlobalAveragePool", ["gated"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("MatMul", ["f", w], ["y"]),
    ]
    model = classifier(head, weights, [1, 5], opset=18, trunk=gate(spelling, weights))
    result = fc2conv.convert_onnx(model)
    assert len(result.plan.gates) == 1 and "stay global" in str(result)
    assert [s.node.output[0] for s in result.plan.changes if s.rule.name == "window pool"] == ["g"]
    image = np.random.default_rng(4).standard_normal((1, 3, SIZE + 3, SIZE + 5))
    image = image.astype(np.float32)
    maps = run(result.model, image)[0][0]  # 5 × 4 × 6
    free = onnx.ModelProto()
    free.CopyFrom(model)
    for axis in (2, 3):
        free.graph.input[0].type.tensor_type.shape.dim[axis].dim_param = "size"
    del free.graph.output[:]
    free.graph.output.append(onnx.helper.make_empty_tensor_value_info("gated"))
    gated = run(free, image)[0][0]  # C × 13 × 15: the gate computed over the whole image
    window = SIZE - 2
    expected = np.stack(
        [
            np.stack([gated[:, r : r + window, c : c + window].mean(axis=(1, 2)) for c in range(6)])
            for r in range(4)
        ]
    ) @ onnx.numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w"))
    assert float(np.abs(expected).max()) > 1e-2
    assert compare.relative_error(expected, maps.transpose(1, 2, 0)) <= 1e-5


def test_every_node_in_the_way_is_listed():
    weights = Weights()
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("ArgMax", ["f"], ["a"], axis=1, keepdims=1),
        node("Cast", ["a"], ["af"], to=1),
        node("TopK", ["f", weights.ints("k", [1])], ["top", "index"], axis=1),
        node("Add", ["af", "top"], ["y"]),
    ]
    message = refusal(classifier(head, weights, [1, 1]))
    assert "2 nodes have no exact fully convolutional form" in message
    assert "node a (ArgMax): in the classifier head has no exact convolutional form" in message
    assert "node top (TopK): in the classifier head" in message
    assert "(Cast)" not in message and "(Add)" not in message  # consequences, not causes


def several_outputs(weights: Weights) -> onnx.ModelProto:
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("MatMul", ["f", weights.normal("w", (CHANNELS, 5))], ["y"]),
        node("Softmax", ["y"], ["probabilities"], axis=1),
    ]
    return classifier(
        head, weights, [1, 5], outputs=[("probabilities", [1, 5]), ("m", [1, 4, 10, 10])]
    )


def test_several_class_outputs_are_named_and_one_is_chosen():
    model = several_outputs(Weights())
    with pytest.raises(
        fc2conv.Fc2ConvError,
        match=r"2 outputs could be the class scores: y \(1x5\), probabilities \(1x5\); choose one with --output",
    ):
        fc2conv.convert_onnx(model, verify=False)
    result = fc2conv.convert_onnx(model, output="probabilities")
    assert [o["name"] for o in result.outputs] == ["probabilities"]
    assert result.outputs[0]["ending"] == "softmax"
    assert result.checks[0].relative_error is not None
    with pytest.raises(fc2conv.Fc2ConvError, match="no output logits; its outputs are y"):
        fc2conv.convert_onnx(model, output="logits", verify=False)


def test_the_only_class_vector_among_the_outputs_is_converted():
    weights = Weights()
    head = [
        node("GlobalAveragePool", ["m"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("MatMul", ["f", weights.normal("w", (CHANNELS, 5))], ["y"]),
    ]
    model = classifier(head, weights, [1, 5], outputs=[("m", [1, 4, 10, 10])])
    result = fc2conv.convert_onnx(model)
    assert [o["name"] for o in result.outputs] == ["y"]
    assert "converted output y, the only class vector; left out m" in str(result)


def test_a_callers_rule_list():
    """Without TrunkNode, no rule keeps the trunk's own nodes: each is declined by name."""
    weights = Weights()
    head = [node("GlobalAveragePool", ["m"], ["g"]), node("Flatten", ["g"], ["y"])]
    model = classifier(head, weights, [1, 4])
    rules = tuple(rule for rule in ONNX_RULES if not isinstance(rule, TrunkNode))
    with pytest.raises(fc2conv.UnsupportedModelError, match=r"node c \(Conv\)"):
        fc2conv.convert_onnx(model, rules=rules, verify=False)
    assert fc2conv.convert_onnx(model, rules=ONNX_RULES, verify=False).outputs[0]["channels"] == 4
