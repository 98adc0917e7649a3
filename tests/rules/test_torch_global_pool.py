"""global-pool: a global pool in any spelling (pool modules, adaptive pools to 1x1, mean, amax
and sum, one axis at a time, of a channels-last map) becomes a pool with the map's kernel and
stride 1 in mode "window", and goes in mode "cam"; cam refuses max, sum and pools one axis at a
time, and a reduction over other axes than the height and width is refused."""

from __future__ import annotations

import pytest
import torch
from classifiers import POOLS, Pooled, Trunk
from helpers import RTOL, convert_and_verify, refusals, reinit, steps_of
from torch import nn
from windows import assert_cells_are_windows

import fc2conv


@pytest.mark.parametrize("pool", POOLS)
def test_window_mode_cells_are_the_classifier_on_each_window(pool: str) -> None:
    model = reinit(Pooled(pool, "mlp"))
    converted, _ = convert_and_verify(model, (20, 20))
    assert steps_of(converted.plan, "global-pool")
    assert converted.geometry.stride == (2, 2)
    image = torch.randn(2, 3, 27, 24)
    with torch.no_grad():
        maps = converted(image)
    assert maps.shape[-2:] == converted.output_size(27, 24) == (4, 3)
    assert_cells_are_windows(model, image, maps, (20, 20), (2, 2), [(0, 0), (3, 2), (1, 2)])


def test_the_plan_names_the_window_pool() -> None:
    assert steps_of(fc2conv.plan(Pooled("mean"), (20, 20)), "global-pool") == [
        (
            "forward: mean",
            "global avg pool over 7x7 (12 channels) → AvgPool2d(kernel 7x7, stride 1)",
        )
    ]


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
    assert any(
        "(class-activation map)" in action for _, action in steps_of(converted.plan, "global-pool")
    )
    for size in [(20, 20), (33, 27)]:
        report = fc2conv.verify(model, converted, size, rtol=RTOL)
        assert report.output_scale > 0.1
    assert converted(torch.randn(2, 3, 33, 27)).shape == (2, 6, 13, 10)
    assert converted.output_size(33, 27) == (13, 10)


@pytest.mark.parametrize(
    ("pool", "layer"), [("AdaptiveMaxPool2d", "adaptive_max"), ("amax", "forward: amax")]
)
def test_cam_refuses_global_max(pool: str, layer: str) -> None:
    reason = (
        "mode='cam' needs global average pooling, and max pooling does not commute with the "
        "classifier; use mode='window'"
    )
    assert ("global-pool", layer, reason) in refusals(Pooled(pool), (20, 20), mode="cam")


@pytest.mark.parametrize(
    ("pool", "layer", "reason"),
    [
        (
            "sum",
            "forward: sum",
            "mode='cam' needs global average pooling, and sum pooling does not commute with the "
            "classifier; use mode='window'",
        ),
        (
            "mean-chain",
            "forward: mean",
            "mode='cam' needs one global average pooling; this pools one axis at a time; use "
            "mode='window'",
        ),
    ],
    ids=["sum", "mean-chain"],
)
def test_cam_refuses_sums_and_one_axis_at_a_time(pool: str, layer: str, reason: str) -> None:
    assert ("global-pool", layer, reason) in refusals(Pooled(pool), (20, 20), mode="cam")


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
        self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 4)  # no padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = x / (x.pow(2).mean(1, keepdim=True) + 1e-5).sqrt()
        last = x.permute(0, 2, 3, 1)
        last = last - last.mean(-1, keepdim=True)
        return self.fc(last.permute(0, 3, 1, 2).mean((2, 3)))


def test_reductions_over_channels_stay_in_the_trunk() -> None:
    model = reinit(ChannelNorms())
    converted, _ = convert_and_verify(model, (16, 16))
    assert steps_of(converted.plan, "global-pool") == [  # the last mean only
        (
            "forward: mean",
            "global avg pool over 14x14 (8 channels) → AvgPool2d(kernel 14x14, stride 1)",
        )
    ]
    images = torch.randn(2, 3, 23, 20)
    with torch.no_grad():
        maps = converted(images)
    assert maps.shape[-2:] == converted.output_size(23, 20) == (8, 5)
    assert_cells_are_windows(model, images, maps, (16, 16), (1, 1), [(0, 0), (7, 4), (3, 2)])


class ChannelsAndRows(Trunk):
    """A mean over the channels and rows of the trunk's map: N×4 (its columns) at 8x8."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((1, 2)))


def test_a_reduction_over_channels_and_rows_is_refused() -> None:
    reason = "reduces axes (1, 2) of the map, which are not its height and width"
    assert ("global-pool", "forward: mean", reason) in refusals(ChannelsAndRows(), (8, 8))
