"""Flat concat: flattened maps of one size joined along the features become the maps joined
along their channels and one convolution; maps of different sizes, a vector beside a map and
channels-last flattens are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import windows
from onnx_nodes import (
    CHANNELS,
    RTOL,
    SIZE,
    Weights,
    assert_cells_are_windows,
    classifier,
    node,
    plan_of,
    refusal,
    run,
)

import fc2conv

MAP = (SIZE - 2) ** 2 * CHANNELS  #: the flattened trunk map's features


def test_a_map_and_twice_the_map():
    """``torch.cat([f, 2 * f], 1)`` as the PyTorch exporter writes it."""
    weights = Weights()
    two = weights.add("two", np.array(2.0, np.float32))
    w = weights.normal("w", (2 * MAP, 5), MAP**-0.5)
    head = [
        node("Flatten", ["m"], ["f"]),
        node("Mul", ["f", two], ["g"]),
        node("Concat", ["f", "g"], ["j"], axis=1),
        node("MatMul", ["j", w], ["y"]),
    ]
    model = classifier(head, weights, [1, 5])
    assert "Concat of the 2 maps along their channels (8)" in plan_of(model)
    assert_cells_are_windows(model)


def test_two_maps_of_one_size():
    weights = Weights()
    pointwise = weights.normal("pointwise", (3, CHANNELS, 1, 1), 0.5)
    w = weights.normal("w", (MAP + MAP // CHANNELS * 3, 5), MAP**-0.5)
    b = weights.normal("b", (5,), 0.1)
    head = [
        node("Conv", ["m", pointwise], ["p"]),
        node("Flatten", ["m"], ["f"]),
        node("Flatten", ["p"], ["g"]),
        node("Concat", ["f", "g"], ["j"], axis=-1),
        node("Gemm", ["j", w, b], ["y"]),
    ]
    assert_cells_are_windows(classifier(head, weights, [1, 5]))


def test_maps_of_different_sizes_are_refused():
    weights = Weights()
    w = weights.normal("w", (MAP + MAP // 4, 5))
    head = [
        node("MaxPool", ["m"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Flatten", ["m"], ["f"]),
        node("Flatten", ["p"], ["g"]),
        node("Concat", ["f", "g"], ["j"], axis=1),
        node("MatMul", ["j", w], ["y"]),
    ]
    message = refusal(classifier(head, weights, [1, 5]))
    assert "node j (Concat) joins flattened maps of different sizes (10x10, 5x5)" in message


def test_a_vector_beside_a_map_is_refused():
    weights = Weights()
    w = weights.normal("w", (MAP + CHANNELS, 5))
    head = [
        node("GlobalAveragePool", ["m"], ["a"]),
        node("Flatten", ["a"], ["v"]),
        node("Flatten", ["m"], ["f"]),
        node("Concat", ["f", "v"], ["j"], axis=1),
        node("MatMul", ["j", w], ["y"]),
    ]
    message = refusal(classifier(head, weights, [1, 5]))
    assert "node j (Concat) joins a flattened map with a value that is not one" in message


def test_channels_last_flattens_are_refused():
    weights = Weights()
    w = weights.normal("w", (2 * MAP, 5))
    head = [
        node("Transpose", ["m"], ["t"], perm=[0, 2, 3, 1]),
        node("Flatten", ["t"], ["f"]),
        node("Concat", ["f", "f"], ["j"], axis=1),
        node("MatMul", ["j", w], ["y"]),
    ]
    message = refusal(classifier(head, weights, [1, 5]))
    assert "joins a map flattened in the NHWC order" in message


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("style", ["scaled", "branches"])
def test_both_pytorch_exporters_spellings(style: str, exporter: str, tmp_path: Path) -> None:
    """``torch.cat`` of flattens as both PyTorch exporters write it: every cell of the converted
    file is the original file on its window."""
    import torch
    from classifiers import ConcatenatedFlattens
    from exporters import export, run_onnx
    from helpers import reinit

    model = reinit(ConcatenatedFlattens(style)).eval()
    path = tmp_path / "joined.onnx"
    export(model, (12, 10), path, exporter)
    result = fc2conv.convert_onnx(path)
    assert "along their channels" in str(result.plan)
    assert result.geometry.stride == (2, 2) and result.geometry.window == (12, 10)
    image = np.random.default_rng(1).standard_normal((2, 3, 22, 17)).astype(np.float32)
    maps = run(result.model, image)[0]
    assert maps.shape == (2, 5, 6, 4) and np.abs(maps).max() > 1
    windows.assert_cells_are_windows(
        lambda crop: run_onnx(path, crop), image, maps, (12, 10), (2, 2), rtol=RTOL
    )
    del torch


def test_maps_of_one_size_but_different_strides_are_caught(tmp_path: Path) -> None:
    from classifiers import ConcatenatedFlattens
    from exporters import export
    from helpers import reinit
    from torch import nn

    model = ConcatenatedFlattens("branches")
    model.b = nn.Sequential(nn.Conv2d(3, 4, (8, 7)), nn.ReLU())
    path = tmp_path / "strides.onnx"
    export(reinit(model).eval(), (12, 10), path, "torchscript")
    message = refusal(onnx.load(path))
    assert "joins flattened maps that are 5x4 at the canonical size but grow apart" in message
