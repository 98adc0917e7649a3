"""linear: a Linear (module or F.linear) becomes a convolution, k×k after a flatten and 1×1 on
vectors, sharing storage with the original; one on an axis that holds no features is refused,
and so is an F.linear after a per-feature affine map (which folds only into a module)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import RTOL, convert_and_verify, refusals, reinit, relative_error, steps_of
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
    assert steps_of(converted.plan, "linear") == [
        ("forward: linear", "Linear(200→16) → Conv2d(8→16, kernel 5x5)"),
        ("forward: linear", "Linear(16→7) → Conv2d(16→7, kernel 1x1)"),
    ]
    code = converted.graph_module.code
    assert "conv2d" in code and "linear" not in code
    assert converted(torch.randn(2, 3, 14, 18)).shape == (2, 7, 3, 5)


def test_plan_lists_each_linear_with_its_kernel() -> None:
    assert steps_of(fc2conv.plan(FlattenHead(), (10, 10)), "linear") == [
        ("fc6", "Linear(200→16) → Conv2d(8→16, kernel 5x5)"),
        ("fc7", "Linear(16→7) → Conv2d(16→7, kernel 1x1)"),
    ]


def linear_on_pooled_width() -> nn.Module:
    """A Linear on the last axis of the pooled N×4×1×1 map: its width, not its features."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Linear(1, 5), nn.Flatten())


def test_linear_on_the_width_of_a_pooled_map_is_declined() -> None:
    reason = "applies to the last axis of a 4x1x1 tensor that is not a feature vector"
    assert ("linear", "2", reason) in refusals(linear_on_pooled_width(), (8, 8))


class FunctionalAfterAffine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.scale = nn.Parameter(torch.rand(4 * 6 * 6) + 0.5)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(x), 1) * self.scale
        return F.linear(x, self.fc.weight, self.fc.bias)


def test_a_functional_linear_after_a_per_feature_affine_map_is_declined() -> None:
    reason = "a per-feature affine map before it folds only into an nn.Linear module"
    assert ("linear", "forward: linear", reason) in refusals(FunctionalAfterAffine(), (8, 8))


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
