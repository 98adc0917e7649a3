"""flat-concat: flattened maps of one spatial size joined along their features become the maps
joined along their channels, and the Linear after them one convolution whose kernel is a view of
its weight; maps of different sizes or strides, a vector joined to a map and maps flattened
channels-last are refused."""

from __future__ import annotations

import pytest
import torch
from classifiers import ConcatenatedFlattens
from helpers import RTOL, convert_and_verify, refusals, reinit, relative_error, steps_of
from torch import nn
from windows import assert_cells_are_windows

CANONICAL = (12, 10)
STEPS = {  # style: (the concatenation's layer, the channels joined, the Linear's step)
    "scaled": ("forward: cat", "6+6", ("fc", "Linear(240→7) → Conv2d(12→7, kernel 5x4)")),
    "branches": ("forward: cat", "6+4", ("fc", "Linear(200→7) → Conv2d(10→7, kernel 5x4)")),
    "functional": (
        "forward: concat",
        "6+4",
        ("forward: linear", "Linear(200→7) → Conv2d(10→7, kernel 5x4)"),
    ),
}


@pytest.mark.parametrize("style", sorted(STEPS))
def test_joined_flattens_become_one_convolution(style: str) -> None:
    model = reinit(ConcatenatedFlattens(style))
    converted, report = convert_and_verify(model, CANONICAL)
    assert report.relative_error < RTOL and report.output_scale > 1
    layer, channels, linear = STEPS[style]
    assert steps_of(converted.plan, "flat-concat") == [
        (layer, f"concatenation of 2 flattened 5x4 maps → along their channels ({channels})")
    ]
    assert linear in steps_of(converted.plan, "linear")
    assert converted.geometry.stride == (2, 2) and converted.geometry.window == CANONICAL
    image = torch.randn(2, 3, 22, 17, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        maps = converted(image)
    assert maps.shape == (2, 5, 6, 4)
    # no padding in either branch: every cell is the classifier on its window
    assert_cells_are_windows(model, image, maps, CANONICAL, (2, 2))


def test_the_kernel_is_a_view_of_the_linear_weight() -> None:
    model = reinit(ConcatenatedFlattens("branches"))
    converted, _ = convert_and_verify(model, CANONICAL, inplace=True)
    conv = converted.graph_module.get_submodule("fc")
    assert isinstance(conv, nn.Conv2d) and conv.weight.shape == (7, 10, 5, 4)
    assert conv.weight.data_ptr() == model.fc.weight.data_ptr()
    assert conv.bias is model.fc.bias
    # column block i of the weight is the kernel of map i: the sum of the two convolutions
    image = torch.randn(2, 3, 16, 14, generator=torch.Generator().manual_seed(2))
    weight = model.fc.weight.detach()
    with torch.no_grad():
        a, b = model.a(image), torch.relu(model.b(image))
        blocks = torch.nn.functional.conv2d(a, weight[:, :120].reshape(7, 6, 5, 4))
        blocks = blocks + torch.nn.functional.conv2d(b, weight[:, 120:].reshape(7, 4, 5, 4))
        expected = model.out(torch.relu(blocks + model.fc.bias[:, None, None]).permute(0, 2, 3, 1))
        got = converted(image)
    assert relative_error(expected.permute(0, 3, 1, 2), got) < RTOL


class UnevenBranches(ConcatenatedFlattens):
    """Branch ``b`` a 3x3 convolution of stride 2: 5x4 at 12x10 as ``a``'s map, of the same
    stride, but one cell larger at odd sizes."""

    def __init__(self) -> None:
        super().__init__("branches")
        self.b = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU())


def test_maps_of_one_stride_that_differ_at_some_sizes_convert_in_size_steps() -> None:
    model = reinit(UnevenBranches())
    converted, _ = convert_and_verify(model, CANONICAL)
    assert converted.geometry.size_step == (2, 2)
    image = torch.randn(2, 3, 22, 18, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        maps = converted(image)
    assert maps.shape == (2, 5, 6, 5)
    assert_cells_are_windows(model, image, maps, CANONICAL, (2, 2))


def test_maps_of_different_spatial_sizes_are_refused() -> None:
    reason = (
        "concatenates flattened maps of different spatial sizes (6x5x4, 4x2x2), which no one "
        "convolution kernel covers; pool them to one size before flattening"
    )
    assert ("flat-concat", "forward: cat", reason) in refusals(
        ConcatenatedFlattens("sizes"), CANONICAL
    )


class DifferentStrides(ConcatenatedFlattens):
    """Branch ``b`` an 8x7 convolution of stride 1: 5x4 at 12x10 too, but of another stride."""

    def __init__(self) -> None:
        super().__init__("branches")
        self.b = nn.Sequential(nn.Conv2d(3, 4, (8, 7)), nn.ReLU())


def test_maps_of_one_size_but_different_strides_are_refused() -> None:
    reason = (
        "concatenates flattened maps that are 5x4 at the canonical size but grow apart on larger "
        "images (517x516, 1029x1028 at 1036x1034), so their cells do not line up"
    )
    assert ("flat-concat", "forward: cat", reason) in refusals(DifferentStrides(), CANONICAL)


@pytest.mark.parametrize(
    ("style", "reason"),
    [
        (
            "vector",
            "concatenates a flattened map with a feature vector, which no one convolution reads "
            "together with the map",
        ),
        (
            "channels-last",
            "concatenates maps flattened in another axis order than NCHW, whose joined features "
            "are not the flatten of one map",
        ),
    ],
)
def test_a_vector_or_channels_last_parts_are_refused(style: str, reason: str) -> None:
    assert ("flat-concat", "forward: cat", reason) in refusals(
        ConcatenatedFlattens(style), CANONICAL
    )


class JoinedAlongTheBatch(ConcatenatedFlattens):
    def __init__(self) -> None:
        super().__init__("scaled")
        self.fc = nn.Linear(6 * 20, 7)

    def joined(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.flatten(self.a(x), 1)
        return torch.cat([f, 2 * f])


def test_a_join_along_the_batch_is_refused() -> None:
    reason = "joins the flattened maps along another axis than their features"
    assert ("flat-concat", "forward: cat", reason) in refusals(JoinedAlongTheBatch(), CANONICAL)
