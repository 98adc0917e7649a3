"""adaptive-pool: an adaptive pool whose windows at the canonical size are all alike becomes that
fixed pool (or, on a map of its own size, the identity); one that enlarges the map, or pools
windows of different sizes, is refused with the size to choose instead."""

from __future__ import annotations

import pytest
import torch
from helpers import convert_and_verify, refusals, reinit, steps_of
from torch import nn


class AdaptiveSeven(nn.Module):
    """VGG's AdaptiveAvgPool2d((7, 7)) before a flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.fc = nn.Linear(4 * 7 * 7, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def test_identity_adaptive_pool_is_removed() -> None:
    converted, _ = convert_and_verify(reinit(AdaptiveSeven()), (14, 14))
    assert steps_of(converted.plan, "adaptive-pool") == [
        ("avgpool", "AdaptiveAvgPool2d(7x7) removed: identity on the 7x7 map at canonical size")
    ]
    assert "adaptive" not in converted.graph_module.code
    assert converted(torch.randn(2, 3, 30, 18)).shape == (2, 5, 9, 3)


def test_divisible_adaptive_pool_becomes_fixed_pool() -> None:
    converted, _ = convert_and_verify(reinit(AdaptiveSeven()), (28, 28))
    assert steps_of(converted.plan, "adaptive-pool") == [
        ("avgpool", "AdaptiveAvgPool2d(7x7) on 14x14 → fixed pool, kernel 2x2, stride 2x2")
    ]
    assert "avg_pool2d" in converted.graph_module.code
    assert converted.geometry.stride == (4, 4)


@pytest.mark.parametrize(
    ("size", "pool", "stride"),
    [(16, "kernel 2x2, stride 1x1", 2), (30, "kernel 3x3, stride 2x2", 4)],
)
def test_adaptive_pool_with_uniform_windows_becomes_fixed_pool(
    size: int, pool: str, stride: int
) -> None:
    """8 → 7 pools windows of 2 every pixel, 15 → 7 windows of 3 every 2 pixels: fixed pools,
    though 7 divides neither."""
    converted, _ = convert_and_verify(reinit(AdaptiveSeven()), (size, size))
    assert steps_of(converted.plan, "adaptive-pool") == [
        ("avgpool", f"AdaptiveAvgPool2d(7x7) on {size // 2}x{size // 2} → fixed pool, {pool}")
    ]
    assert converted.geometry.stride == (stride, stride)
    assert converted(torch.randn(2, 3, size + 7, size + 2)).shape[-2:] == converted.output_size(
        size + 7, size + 2
    )


def test_non_divisible_adaptive_pool_is_refused() -> None:
    reason = (
        "AdaptiveAvgPool2d(7x7) on a 10x10 map pools windows of different sizes, which no fixed "
        "pooling does; choose an input size whose feature map is a multiple of 7x7"
    )
    assert refusals(AdaptiveSeven(), (20, 20)) == [("adaptive-pool", "avgpool", reason)]


def test_an_adaptive_pool_that_enlarges_the_map_is_refused() -> None:
    reason = (
        "AdaptiveAvgPool2d(7x7) enlarges a 6x6 map, which no fixed pooling does; choose an input "
        "size whose feature map is at least 7x7"
    )
    assert refusals(AdaptiveSeven(), (12, 12)) == [("adaptive-pool", "avgpool", reason)]
