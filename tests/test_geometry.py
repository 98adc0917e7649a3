"""Geometry: the predicted map size holds at every input size, and cell boxes follow the stride."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import reinit
from torch import nn

import fc2conv


def head(features: nn.Module, size: tuple[int, int], pool: bool) -> nn.Sequential:
    with torch.no_grad():
        shape = features(torch.zeros(1, 3, *size)).shape
    if pool:
        return nn.Sequential(
            features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(shape[1], 3)
        )
    return nn.Sequential(features, nn.Flatten(), nn.Linear(shape[1:].numel(), 3))


CASES = {
    # padding larger than half the kernel: the minimum is below canonical - stride + 1
    "padded": (nn.Sequential(nn.Conv2d(3, 2, 2, 2, 1), nn.GELU(), nn.MaxPool2d(2)), (19, 10)),
    "ceil-mode": (
        nn.Sequential(nn.Conv2d(3, 4, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True)),
        (23, 17),
    ),
    "strided": (
        nn.Sequential(nn.Conv2d(3, 4, 5, 3, 2), nn.ReLU(), nn.Conv2d(4, 4, 3, 2)),
        (30, 26),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("pool", "mode"), [(False, "window"), (True, "window"), (True, "cam")])
def test_predicted_map_size_holds_at_every_size(case: str, pool: bool, mode: str) -> None:
    features, size = CASES[case]
    model = reinit(head(features, size, pool))
    converted = fc2conv.convert(model, size, mode=mode)
    minimum, stride = converted.geometry.min_size, converted.geometry.stride
    with torch.no_grad():
        for height in range(minimum[0], minimum[0] + 3 * stride[0] + 2):
            width = minimum[1] + (height * 7) % (2 * stride[1] + 1)
            maps = converted(torch.zeros(1, 3, height, width))
            assert maps.shape[-2:] == converted.output_size(height, width), (height, width)
    too_small = (minimum[0] - 1, minimum[1]) if minimum[0] > 1 else (minimum[0], minimum[1] - 1)
    with pytest.raises(fc2conv.InputSizeError):
        converted(torch.zeros(1, 3, *too_small))


def test_cell_boxes_follow_the_stride() -> None:
    geometry = fc2conv.Geometry((224, 224), (32, 32), (224, 224), (0, 0), (224, 224))
    boxes = geometry.cell_boxes(2, 3)
    assert boxes.shape == (2, 3, 4)
    assert boxes[1, 2].tolist() == [64, 32, 288, 256]
    assert geometry.output_size(261, 325) == (2, 4)
    assert fc2conv.Geometry.from_dict(geometry.as_dict()) == geometry


def test_cell_count_when_the_smallest_size_is_above_the_maps_origin() -> None:
    """The first convolution needs at least 3 pixels, but the map's period starts at 1: at 9
    pixels the map already has 2 cells. A formula anchored at the smallest size (3) says 1."""
    model = reinit(
        nn.Sequential(
            nn.Conv2d(1, 2, 5, stride=2, padding=1),
            nn.MaxPool2d(2, 2, padding=1),
            nn.Conv2d(2, 2, 1, stride=2),
            nn.Flatten(),
            nn.Linear(2, 3),
        )
    )
    converted = fc2conv.convert(model, (8, 8))
    geometry = converted.geometry
    assert geometry.stride == (8, 8) and geometry.min_size == (3, 3)
    with torch.no_grad():
        for size in range(3, 3 + 3 * 8 + 1):
            maps = converted(torch.zeros(1, 1, size, size + 1))
            assert maps.shape[-2:] == converted.output_size(size, size + 1), size
    assert converted.output_size(9, 9) == (2, 2)


class SpaceToDepth(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(12, 4, 3)
        self.fc = nn.Linear(4 * 5 * 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.relu(self.conv(F.pixel_unshuffle(x, 2))), 1))


def test_a_model_that_takes_only_even_sizes() -> None:
    converted = fc2conv.convert(reinit(SpaceToDepth()), (14, 14), input_channels=3)
    geometry = converted.geometry
    assert geometry.size_step == (2, 2) and geometry.stride == (2, 2)
    assert "sizes in steps of 2x2" in str(geometry)
    with torch.no_grad():
        for size in range(geometry.min_size[0], geometry.min_size[0] + 3 * 2 + 1, 2):
            maps = converted(torch.zeros(1, 3, size, size + 4))
            assert maps.shape[-2:] == converted.output_size(size, size + 4), size
    with pytest.raises(fc2conv.InputSizeError, match="crop it to 16x20"):
        converted(torch.zeros(1, 3, 17, 21))
    assert geometry.usable_size(17, 21) == (16, 20)
    assert fc2conv.Geometry.from_dict(geometry.as_dict()) == geometry
