"""WindowPool: every spelling of a pool over the whole canonical map becomes a window pool."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_nodes import Weights, assert_cells_are_windows, classifier, node, plan_of


def pooled_head(pool: list, weights: Weights, source: str = "g") -> list:
    w = weights.normal("w", (4, 5))
    return [*pool, node("Flatten", [source], ["f"]), node("MatMul", ["f", w], ["y"])]


@pytest.mark.parametrize(
    ("spelling", "opset"),
    [
        ("GlobalAveragePool", 13),
        ("GlobalMaxPool", 7),
        ("ReduceMean_attribute", 13),
        ("ReduceMean_input", 18),
        ("ReduceSum", 13),
        ("AveragePool_covering", 9),
        ("AveragePool_count_include_pad", 11),
    ],
)
def test_pools_over_the_whole_map(spelling, opset):
    weights = Weights()
    pool = {
        "GlobalAveragePool": [node("GlobalAveragePool", ["m"], ["g"])],
        "GlobalMaxPool": [node("GlobalMaxPool", ["m"], ["g"])],
        "ReduceMean_attribute": [node("ReduceMean", ["m"], ["g"], axes=[2, 3])],
        "ReduceMean_input": [node("ReduceMean", ["m", weights.ints("axes", [-2, -1])], ["g"])],
        "ReduceSum": [
            node("ReduceSum", ["m", weights.ints("axes", [2, 3])], ["s"]),
            node("Mul", ["s", weights.add("tenth", np.array(0.01, np.float32))], ["g"]),
        ],
        "AveragePool_covering": [node("AveragePool", ["m"], ["g"], kernel_shape=[10, 10])],
        "AveragePool_count_include_pad": [
            node(
                "AveragePool",
                ["m"],
                ["g"],
                kernel_shape=[11, 11],
                pads=[1, 1, 0, 0],
                count_include_pad=1,
            )
        ],
    }[spelling]
    model = classifier(pooled_head(pool, weights), weights, [1, 5], opset=opset)
    assert "stride 1 (one cell per window)" in plan_of(model)
    assert_cells_are_windows(model)


def test_a_pool_of_part_of_the_map_stays_in_the_trunk():
    weights = Weights()
    pool = [
        node("MaxPool", ["m"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        node("GlobalAveragePool", ["p"], ["g"]),
    ]
    plan = plan_of(classifier(pooled_head(pool, weights), weights, [1, 5]))
    assert "p (MaxPool)" not in plan and "(GlobalAveragePool): AveragePool 5x5" in plan
