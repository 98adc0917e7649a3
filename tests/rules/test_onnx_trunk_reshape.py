"""TrunkReshape: a channel shuffle with a fixed shape runs at every size; a reshape across
rows or columns is refused."""

from __future__ import annotations

from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, plan_of, refusal


def head(weights: Weights, source: str, channels: int = 4) -> list:
    w = weights.normal("w", (5, channels))
    return [
        node("GlobalAveragePool", [source], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("Gemm", ["f", w], ["y"], transB=1),
    ]


def test_a_channel_shuffle_runs_at_every_size():
    weights = Weights()
    shuffle = [
        node("Reshape", ["m", weights.ints("s1", [1, 2, 2, 10, 10])], ["r"]),
        node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
        node("Reshape", ["t", weights.ints("s2", [1, 4, 10, 10])], ["shuffled"]),
    ]
    model = classifier(head(weights, "shuffled"), weights, [1, 5], trunk=shuffle)
    assert plan_of(model).count("channels split") == 2
    assert_cells_are_windows(model)


def test_a_reshape_across_rows_is_refused():
    weights = Weights()
    fold = [node("Reshape", ["m", weights.ints("s", [1, 8, 5, 10])], ["folded"])]
    model = classifier(head(weights, "folded", 8), weights, [1, 5], trunk=fold)
    assert "node folded (Reshape) reshapes the feature map across its rows" in refusal(model)
