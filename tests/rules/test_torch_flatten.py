"""flatten: every spelling of flattening the map becomes the identity (the next Linear a k×k
convolution), a flatten in another axis order a permute back to NCHW, reshapes between vectors
and 1x1 maps identities; a reshape that regroups the features is refused, and so is a flatten of
the map in mode "cam"."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from classifiers import FLATTEN_STYLES, FeatureOperations, Flattening, PaddingFree
from helpers import convert_and_verify, refusals, reinit, steps_of
from windows import assert_cells_are_windows

FLATTENED = "flatten of a 6x4x4 map removed (the next Linear becomes a 4x4 convolution)"


@pytest.mark.parametrize("style", FLATTEN_STYLES)
def test_flatten_styles(style: str) -> None:
    model = reinit(Flattening(style))
    converted, _ = convert_and_verify(model, (10, 10))
    assert [action for _, action in steps_of(converted.plan, "flatten")] == [FLATTENED]
    image = torch.randn(2, 3, 16, 12)
    with torch.no_grad():
        maps = converted(image)
    assert maps.shape == (2, 5, 4, 2)
    assert_cells_are_windows(model, image, maps, (10, 10), (2, 2), [(0, 0), (3, 1)])


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


@pytest.mark.parametrize(
    ("dims", "order"), [((0, 2, 3, 1), "NHWC"), ((0, 3, 2, 1), "NWHC"), ((0, 1, 3, 2), "NCWH")]
)
@pytest.mark.parametrize("functional", [False, True])
def test_flatten_in_another_axis_order_folds_into_the_linear(
    dims: tuple[int, ...], order: str, functional: bool
) -> None:
    model = reinit(PermutedFlatten(dims, functional))
    converted, _ = convert_and_verify(model, (10, 10))
    assert [action for _, action in steps_of(converted.plan, "flatten")] == [
        f"flatten of the {order} map → permute to NCHW (the next Linear becomes a 4x4 convolution)"
    ]
    assert "weight columns reordered to NCHW" in str(converted.plan)
    image = torch.randn(2, 3, 16, 14)
    with torch.no_grad():
        maps = converted(image)
    assert maps.shape == (2, 5, 4, 3)
    # the features have no padding: every cell is the classifier on its window
    assert_cells_are_windows(model, image, maps, (10, 10), (2, 2))


class SplitFeatures(Flattening):
    def __init__(self, groups: int) -> None:
        super().__init__("x")
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(torch.flatten(self.features(x), 1))
        return x.view(x.size(0), 5 // self.groups, self.groups).sum(-1)


def test_reshape_to_a_1_sized_axis_and_back_converts() -> None:
    converted, _ = convert_and_verify(reinit(SplitFeatures(1)), (10, 10))
    assert ("forward: view", "reshape to N×F×1 removed") in steps_of(converted.plan, "flatten")
    assert converted(torch.randn(2, 3, 16, 12)).shape == (2, 5, 4, 2)


def test_vectors_unsqueezed_to_1x1_maps_and_flattened_again() -> None:
    converted, _ = convert_and_verify(reinit(FeatureOperations("unsqueeze")), (16, 16))
    assert [action for _, action in steps_of(converted.plan, "flatten")][-3:] == [
        "reshape to N×F×1 removed",
        "reshape of vectors to 1x1 maps removed",
        "reshape of a pooled map to vectors removed",
    ]
    assert converted(torch.randn(2, 3, 24, 20)).shape == (2, 6, 5, 3)


def test_unsqueezed_vectors_allow_cam() -> None:
    convert_and_verify(reinit(FeatureOperations("unsqueeze")), (16, 16), mode="cam")


class GroupedFeatures(Flattening):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        return x.view(x.size(0), 6, 16).sum(-1)


def test_reshape_of_the_features_is_refused_with_reason() -> None:
    reason = "reshapes the classifier's 96 features to 6x16, which has no per-position equivalent"
    assert ("flatten", "forward: view", reason) in refusals(GroupedFeatures("x"), (10, 10))


def test_cam_refuses_a_flatten_of_the_map() -> None:
    reason = (
        "mode='cam' needs a global pooling before the classifier, but the model flattens a 6x4x4 "
        "map; use mode='window'"
    )
    assert ("flatten", "forward: flatten", reason) in refusals(
        Flattening("torch.flatten"), (10, 10), mode="cam"
    )


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
    assert maps.shape[-2:] == converted.output_size(*image.shape[-2:]) == (6, 5)
    assert_cells_are_windows(model, image, maps, canonical, stride)
