"""A Linear becomes a convolution (k×k after a flatten, 1×1 on vectors), sharing storage."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import RTOL, convert_and_verify, reinit, relative_error
from torch import nn

import fc2conv
from fc2conv.conversion.linear_conv import conv_from_linear


class FlattenHead(nn.Module):
    """conv trunk → flatten of 8x5x5 → Linear → ReLU → Dropout → Linear (VGG-style)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc6 = nn.Linear(8 * 5 * 5, 16)
        self.fc7 = nn.Linear(16, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        return self.fc7(F.dropout(F.relu(self.fc6(x)), training=self.training))


class FunctionalLinear(FlattenHead):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        x = F.relu(F.linear(x, self.fc6.weight, self.fc6.bias))
        return F.linear(x, self.fc7.weight, self.fc7.bias)


def test_flatten_linear_becomes_kxk_conv_sharing_storage() -> None:
    model = reinit(FlattenHead())
    converted, _ = convert_and_verify(model, (10, 10), inplace=True)
    conv = converted.graph_module.get_submodule("fc6")
    assert isinstance(conv, nn.Conv2d)
    assert conv.weight.shape == (16, 8, 5, 5)
    assert conv.weight.data_ptr() == model.fc6.weight.data_ptr()
    assert conv.bias is model.fc6.bias
    fc7 = converted.graph_module.get_submodule("fc7")
    assert isinstance(fc7, nn.Conv2d) and fc7.kernel_size == (1, 1)
    assert fc7.weight.data_ptr() == model.fc7.weight.data_ptr()


def test_copy_by_default_leaves_original_untouched() -> None:
    model = reinit(FlattenHead())
    converted, _ = convert_and_verify(model, (10, 10))
    assert isinstance(model.fc6, nn.Linear)
    assert converted.graph_module.get_submodule("fc6").weight.data_ptr() != (
        model.fc6.weight.data_ptr()
    )


def test_functional_linear_becomes_conv() -> None:
    model = reinit(FunctionalLinear())
    converted, _ = convert_and_verify(model, (10, 10))
    code = converted.graph_module.code
    assert "conv2d" in code and "linear" not in code
    assert converted(torch.randn(2, 3, 14, 18)).shape == (2, 7, 3, 5)


def test_plan_lists_each_linear_with_its_kernel() -> None:
    text = str(fc2conv.plan(FlattenHead(), (10, 10)))
    assert "fc6: Linear(200→16) → Conv2d(8→16, kernel 5x5)" in text
    assert "fc7: Linear(16→7) → Conv2d(16→7, kernel 1x1)" in text


class LinearOnPooledWidth(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(1, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.conv(x), 1)).flatten(1)


def test_linear_on_the_width_of_a_pooled_map_is_declined() -> None:
    with pytest.raises(fc2conv.UnsupportedModelError) as info:
        fc2conv.convert(LinearOnPooledWidth(), (8, 8))
    assert "fc: applies to the last axis of a 4x1x1 tensor" in str(info.value)


def test_linear_conv_gives_the_same_sums_by_product_and_by_convolution() -> None:
    linear = reinit(nn.Sequential(nn.Linear(8 * 5 * 5, 16)))[0]
    conv = conv_from_linear(linear, 8, 5, 5)
    images = torch.randn(2, 8, 9, 11)  # 5x7 output positions: the matrix-product path
    with torch.no_grad():
        by_product = conv(images)
        conv.max_product_positions = 0
        by_convolution = conv(images)
    assert relative_error(by_convolution, by_product) < RTOL
    window = images[:, :, 2:7, 3:8].flatten(1)
    assert relative_error(linear(window), by_product[:, :, 2, 3].detach()) < RTOL


class NormalisedFlatten(nn.Module):
    """BatchNorm1d (or a learnt per-feature scale and shift) on the flattened map, as some
    older classifiers normalise the features they flatten."""

    def __init__(self, style: str) -> None:
        super().__init__()
        self.style = style
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.norm = nn.BatchNorm1d(4 * 4 * 4)
        self.scale = nn.Parameter(torch.rand(4 * 4 * 4) + 0.5)
        self.shift = nn.Parameter(torch.randn(1, 4 * 4 * 4))
        self.fc = nn.Linear(4 * 4 * 4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        if self.style == "batch-norm":
            x = self.norm(x)
        elif self.style == "scale-and-shift":
            x = x * self.scale - self.shift
        return self.fc(x)


@pytest.mark.parametrize("style", ["batch-norm", "scale-and-shift"])
def test_per_feature_affine_on_the_flattened_map_folds_into_the_linear(style: str) -> None:
    model = reinit(NormalisedFlatten(style))
    converted, _ = convert_and_verify(model, (10, 10))
    assert "folded into the next Linear" in str(converted.plan)
    image = torch.randn(2, 3, 14, 12)
    with torch.no_grad():
        maps = converted(image)
        assert maps.shape == (2, 6, 3, 2)
        # no padding in the features: each cell is the classifier on its window
        expected = model(image[:, :, 4:14, 2:12])
    assert relative_error(expected, maps[:, :, 2, 1]) < RTOL
    assert torch.equal(model.fc.weight, reinit(NormalisedFlatten(style)).fc.weight)  # unchanged


class AffineThenActivation(NormalisedFlatten):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.norm(torch.flatten(self.features(x), 1))))


def test_affine_on_the_flattened_map_needs_the_linear_right_after() -> None:
    with pytest.raises(fc2conv.UnsupportedModelError, match="folds only into a Linear"):
        fc2conv.convert(AffineThenActivation("batch-norm"), (10, 10))
