"""Every way of flattening the features becomes the identity; odd reshapes are refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import RTOL, convert_and_verify, reinit, relative_error
from torch import nn

import fc2conv


class Flattening(nn.Module):
    def __init__(self, style: str) -> None:
        super().__init__()
        self.style = style
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.style == "torch.flatten":
            x = torch.flatten(x, 1)
        elif self.style == "Tensor.flatten":
            x = x.flatten(1)
        elif self.style == "nn.Flatten":
            x = self.flatten(x)
        elif self.style == "view":
            x = x.view(x.size(0), -1)
        elif self.style == "reshape":
            x = x.reshape(x.shape[0], -1)
        return self.fc(torch.relu(x))


@pytest.mark.parametrize(
    "style", ["torch.flatten", "Tensor.flatten", "nn.Flatten", "view", "reshape"]
)
def test_flatten_styles(style: str) -> None:
    converted, _ = convert_and_verify(reinit(Flattening(style)), (10, 10))
    assert converted(torch.randn(2, 3, 16, 12)).shape == (2, 5, 4, 2)


class PermutedFlatten(Flattening):
    """Flattens the map in another axis order: channels last (TensorFlow), or the Caffe-era
    ``permute(0, 3, 2, 1).contiguous().view(n, -1)`` (W, H, C)."""

    def __init__(self, dims: tuple[int, ...], functional: bool = False) -> None:
        super().__init__("x")
        self.dims, self.functional = dims, functional

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).permute(*self.dims).contiguous()
        x = x.view(x.size(0), -1)
        if self.functional:
            return F.linear(x, self.fc.weight, self.fc.bias)
        return self.fc(x)


@pytest.mark.parametrize("dims", [(0, 2, 3, 1), (0, 3, 2, 1), (0, 1, 3, 2)])
@pytest.mark.parametrize("functional", [False, True])
def test_flatten_in_another_axis_order_folds_into_the_linear(
    dims: tuple[int, ...], functional: bool
) -> None:
    model = reinit(PermutedFlatten(dims, functional))
    converted, _ = convert_and_verify(model, (10, 10))
    assert "weight columns reordered to NCHW" in str(converted.plan)
    image = torch.randn(2, 3, 16, 14)
    with torch.no_grad():
        maps = converted(image)
        assert maps.shape == (2, 5, 4, 3)
        # the features have no padding: the cell at (1, 2) is the classifier on its window
        expected = model(image[:, :, 2:12, 4:14])
    assert relative_error(expected, maps[:, :, 1, 2]) < RTOL


class SplitFeatures(Flattening):
    def __init__(self, groups: int) -> None:
        super().__init__("x")
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(torch.flatten(self.features(x), 1))
        return x.view(x.size(0), 5 // self.groups, self.groups).sum(-1)


def test_reshape_to_a_1_sized_axis_and_back_converts() -> None:
    converted, _ = convert_and_verify(reinit(SplitFeatures(1)), (10, 10))
    assert converted(torch.randn(2, 3, 16, 12)).shape == (2, 5, 4, 2)


class GroupedFeatures(Flattening):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        return x.view(x.size(0), 6, 16).sum(-1)


def test_reshape_of_the_features_is_refused_with_reason() -> None:
    with pytest.raises(fc2conv.UnsupportedModelError) as info:
        fc2conv.convert(GroupedFeatures("x"), (10, 10))
    assert "reshapes the classifier's 96 features to 6x16" in str(info.value)


class PaddingFree(nn.Module):
    """A VGG-style classifier whose trunk has no padding: every cell of the converted model
    sees exactly one window of the image, with nothing from outside it."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3), nn.ReLU()
        )
        self.classifier = nn.Sequential(
            nn.Linear(8 * 5 * 3, 12), nn.ReLU(), nn.Dropout(), nn.Linear(12, 4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def test_every_cell_is_the_classifier_on_its_crop() -> None:
    """Off the canonical size, on a non-square image, cell (row, col) equals the original
    classifier on the window at (row, col) times the stride."""
    canonical = (16, 12)
    model = reinit(PaddingFree())
    converted, _ = convert_and_verify(model, canonical)
    stride = converted.geometry.stride
    assert stride == (2, 2) and converted.geometry.window == canonical
    image = torch.randn(2, 3, 16 + 2 * 5 + 1, 12 + 2 * 4)  # 6x5 cells, one pixel left over
    with torch.no_grad():
        maps = converted(image)
        rows, cols = maps.shape[-2:]
        assert (rows, cols) == converted.output_size(*image.shape[-2:]) == (6, 5)
        crops = torch.stack(
            [
                image[:, :, r * 2 : r * 2 + canonical[0], c * 2 : c * 2 + canonical[1]]
                for r in range(rows)
                for c in range(cols)
            ]
        )  # cells × batch × 3 × 16 × 12
        expected = model(crops.flatten(0, 1)).view(rows, cols, 2, 4).permute(2, 3, 0, 1)
    assert relative_error(expected, maps) < RTOL
