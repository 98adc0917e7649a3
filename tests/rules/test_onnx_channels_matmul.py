"""ChannelsMatMul: ConvNeXt's channels-last Linear (a MatMul over the channels of N×H×W×C) is
kept in the trunk; a MatMul along the columns is refused."""

from __future__ import annotations

from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, refusal


def head(weights: Weights, source: str, channels: int) -> list:
    return [
        node("GlobalAveragePool", [source], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("Gemm", ["f", weights.normal("w", (5, channels))], ["y"], transB=1),
    ]


def test_a_matmul_over_the_channels_of_a_channels_last_map():
    weights = Weights()
    trunk = [
        node("Transpose", ["m"], ["t"], perm=[0, 2, 3, 1]),
        node("MatMul", ["t", weights.normal("pw", (4, 6), 0.5)], ["pt"]),
        node("Transpose", ["pt"], ["p"], perm=[0, 3, 1, 2]),
    ]
    assert_cells_are_windows(classifier(head(weights, "p", 6), weights, [1, 5], trunk=trunk))


def test_a_matmul_along_the_columns_is_refused():
    weights = Weights()
    trunk = [node("MatMul", ["m", weights.normal("mix", (10, 10))], ["p"])]
    message = refusal(classifier(head(weights, "p", 4), weights, [1, 5], trunk=trunk))
    assert "node p (MatMul) multiplies a feature map along its columns" in message
