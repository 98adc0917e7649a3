"""Adaptive pools fixed at canonical size; global pools in window and cam mode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import RTOL, convert_and_verify, reinit, relative_error
from torch import nn

import fc2conv


class Pooled(nn.Module):
    """A trunk without padding, so every cell is exactly the classifier on its window."""

    def __init__(self, pool: str, head: str = "linear") -> None:
        super().__init__()
        self.pool, self.head = pool, head
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 12, 3)
        )
        self.adaptive = nn.AdaptiveAvgPool2d(1)
        self.adaptive_max = nn.AdaptiveMaxPool2d((1, 1))
        self.fc = nn.Linear(12, 6)
        self.act = nn.Hardswish()
        self.fc2 = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.pool == "AdaptiveAvgPool2d":
            x = self.adaptive(x).flatten(1)
        elif self.pool == "AdaptiveMaxPool2d":
            x = self.adaptive_max(x).flatten(1)
        elif self.pool == "adaptive_avg_pool2d":
            x = F.adaptive_avg_pool2d(x, 1).view(x.size(0), -1)
        elif self.pool == "mean":
            x = x.mean([2, 3])
        elif self.pool == "mean-keepdim":
            x = x.mean((-2, -1), keepdim=True).squeeze(-1).squeeze(-1)
        elif self.pool == "amax":
            x = torch.amax(x, dim=(2, 3))
        elif self.pool == "avg_pool2d":
            x = F.avg_pool2d(x, x.shape[2:]).flatten(1)
        elif self.pool == "mean-chain":
            x = x.mean(3).mean(2)
        elif self.pool == "amax-chain-keepdim":
            x = x.amax(2, keepdim=True).amax(-1, keepdim=True).squeeze(-1).squeeze(-1)
        elif self.pool == "sum":
            x = x.sum((2, 3)) / 10
        elif self.pool == "torch.sum-keepdim":
            x = torch.sum(x, dim=(-1, -2), keepdim=True).flatten(1) / 10
        elif self.pool == "channels-last-mean":
            x = x.permute(0, 2, 3, 1).mean((1, 2))
        x = self.fc(x)
        return self.fc2(self.act(x)) if self.head == "mlp" else x


POOLS = [
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "adaptive_avg_pool2d",
    "mean",
    "mean-keepdim",
    "amax",
    "avg_pool2d",
    "mean-chain",
    "amax-chain-keepdim",
    "sum",
    "torch.sum-keepdim",
    "channels-last-mean",
]


@pytest.mark.parametrize("pool", POOLS)
def test_window_mode_cells_are_the_classifier_on_each_window(pool: str) -> None:
    model = reinit(Pooled(pool, "mlp"))
    converted, _ = convert_and_verify(model, (20, 20))
    assert converted.geometry.stride == (2, 2)
    image = torch.randn(2, 3, 27, 24)
    maps = converted(image)
    assert maps.shape[-2:] == converted.output_size(27, 24) == (4, 3)
    for row, col in [(0, 0), (3, 2), (1, 2)]:
        top, left = 2 * row, 2 * col
        expected = model(image[:, :, top : top + 20, left : left + 20])
        assert relative_error(expected, maps[:, :, row, col]) < RTOL


@pytest.mark.parametrize(
    "pool",
    [
        "AdaptiveAvgPool2d",
        "adaptive_avg_pool2d",
        "mean",
        "mean-keepdim",
        "avg_pool2d",
        "channels-last-mean",
    ],
)
def test_cam_mode_mean_equals_logits_at_any_size(pool: str) -> None:
    model = reinit(Pooled(pool))
    converted, _ = convert_and_verify(model, (20, 20), mode="cam")
    for size in [(20, 20), (33, 27)]:
        report = fc2conv.verify(model, converted, size, rtol=RTOL)
        assert report.output_scale > 0.1
    assert converted(torch.randn(2, 3, 33, 27)).shape == (2, 6, 13, 10)
    assert converted.output_size(33, 27) == (13, 10)


@pytest.mark.parametrize("pool", ["AdaptiveMaxPool2d", "amax"])
def test_cam_refuses_global_max(pool: str) -> None:
    with pytest.raises(fc2conv.UnsupportedModelError, match="max pooling does not commute"):
        fc2conv.convert(Pooled(pool), (20, 20), mode="cam")


def test_cam_refuses_a_nonlinear_head_and_says_use_window() -> None:
    with pytest.raises(fc2conv.UnsupportedModelError) as info:
        fc2conv.convert(Pooled("mean", "mlp"), (20, 20), mode="cam")
    assert "act: is not affine" in str(info.value)
    assert "use mode='window'" in str(info.value)


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
    assert "adaptive" not in converted.graph_module.code
    assert converted(torch.randn(2, 3, 30, 18)).shape == (2, 5, 9, 3)


def test_divisible_adaptive_pool_becomes_fixed_pool() -> None:
    converted, _ = convert_and_verify(reinit(AdaptiveSeven()), (28, 28))
    assert "avg_pool2d" in converted.graph_module.code
    assert converted.geometry.stride == (4, 4)


def test_non_divisible_adaptive_pool_is_refused() -> None:
    with pytest.raises(
        fc2conv.UnsupportedModelError, match="AdaptiveAvgPool2d\\(7x7\\) on a 10x10"
    ):
        fc2conv.convert(AdaptiveSeven(), (20, 20))


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
    assert f"AdaptiveAvgPool2d(7x7) on {size // 2}x{size // 2} → fixed pool, {pool}" in str(
        converted.plan
    )
    assert converted.geometry.stride == (stride, stride)
    assert converted(torch.randn(2, 3, size + 7, size + 2)).shape[-2:] == converted.output_size(
        size + 7, size + 2
    )


@pytest.mark.parametrize(
    ("pool", "reason"),
    [
        ("sum", "sum pooling does not commute"),
        ("mean-chain", "this pools one axis at a time"),
    ],
)
def test_cam_refuses_sums_and_one_axis_at_a_time(pool: str, reason: str) -> None:
    with pytest.raises(fc2conv.UnsupportedModelError, match=reason):
        fc2conv.convert(Pooled(pool), (20, 20), mode="cam")


def test_pooling_spelled_as_chains_and_sums_names_its_pools() -> None:
    plan = str(fc2conv.plan(Pooled("mean-chain"), (20, 20)))
    assert "avg over the map's width (7) → pool with kernel 1x7, stride 1" in plan
    assert "avg over the map's other spatial axis (7) → pool with kernel 7x1, stride 1" in plan
    plan = str(fc2conv.plan(Pooled("channels-last-mean"), (20, 20)))
    assert "global avg pool over 7x7 of a channels-last map (12 channels)" in plan


class ChannelNorms(nn.Module):
    """Reductions over the channels only (an RMS norm on NCHW, a mean over channels-last
    features): per position, so part of the trunk, not a pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = x / (x.pow(2).mean(1, keepdim=True) + 1e-5).sqrt()
        last = x.permute(0, 2, 3, 1)
        last = last - last.mean(-1, keepdim=True)
        return self.fc(last.permute(0, 3, 1, 2).mean((2, 3)))


def test_reductions_over_channels_stay_in_the_trunk() -> None:
    converted, report = convert_and_verify(reinit(ChannelNorms()), (16, 16))
    assert report.relative_error <= RTOL
    images = torch.randn(2, 3, 23, 20)
    maps = converted(images)
    assert maps.shape[-2:] == converted.output_size(23, 20)
