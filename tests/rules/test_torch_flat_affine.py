"""flat-affine: a per-feature affine map of the flattened map (BatchNorm1d over C·H·W, or a learnt
scale and shift) folds into the Linear that reads it; it is refused when something else reads
it, or when the norm has no running statistics."""

from __future__ import annotations

import pytest
import torch
from helpers import convert_and_verify, refusals, reinit, steps_of
from torch import nn
from windows import assert_cells_are_windows


class NormalisedFlatten(nn.Module):
    """BatchNorm1d (or a learnt per-feature scale and shift) on the flattened map, as some
    older classifiers normalise the features they flatten."""

    def __init__(self, style: str, running_stats: bool = True) -> None:
        super().__init__()
        self.style = style
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.norm = nn.BatchNorm1d(4 * 4 * 4, track_running_stats=running_stats)
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


@pytest.mark.parametrize(
    ("style", "folded"),
    [
        ("batch-norm", [("norm", "BatchNorm1d")]),
        (
            "scale-and-shift",
            [
                ("forward: mul", "mul by a per-feature constant"),
                ("forward: sub", "sub by a per-feature constant"),
            ],
        ),
    ],
)
def test_per_feature_affine_on_the_flattened_map_folds_into_the_linear(
    style: str, folded: list[tuple[str, str]]
) -> None:
    model = reinit(NormalisedFlatten(style))
    converted, _ = convert_and_verify(model, (10, 10))
    assert steps_of(converted.plan, "flat-affine") == [
        (layer, f"{what} on the flattened map → folded into the next Linear")
        for layer, what in folded
    ]
    image = torch.randn(2, 3, 14, 12)
    with torch.no_grad():
        maps = converted(image)
    assert maps.shape == (2, 6, 3, 2)
    # no padding in the features: each cell is the classifier on its window
    assert_cells_are_windows(model, image, maps, (10, 10), (2, 2))
    assert torch.equal(model.fc.weight, reinit(NormalisedFlatten(style)).fc.weight)  # unchanged


class AffineThenActivation(NormalisedFlatten):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.norm(torch.flatten(self.features(x), 1))))


def test_affine_on_the_flattened_map_needs_the_linear_right_after() -> None:
    reason = (
        "scales the flattened map per feature, which folds only into a Linear that reads it "
        "directly"
    )
    assert ("flat-affine", "norm", reason) in refusals(AffineThenActivation("batch-norm"), (10, 10))


def test_a_norm_without_running_statistics_is_refused() -> None:
    reason = "normalises with batch statistics (no running ones)"
    assert ("flat-affine", "norm", reason) in refusals(
        NormalisedFlatten("batch-norm", running_stats=False), (10, 10)
    )
