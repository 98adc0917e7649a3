"""permute: moving a pooled map to channels last and back (as LayerNorm2d does) keeps its
meaning on a map of cells; any other permutation of a pooled map is refused."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import convert_and_verify, refusals, reinit, steps_of
from torch import nn


class ChannelsLastNorm(nn.Module):
    """Pooled to N×8×1×1, ``dims`` to channels last, LayerNorm, back, then a Linear."""

    def __init__(self, dims: tuple[int, ...] = (0, 2, 3, 1)) -> None:
        super().__init__()
        self.dims = dims
        self.conv = nn.Conv2d(3, 8, 3)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1)
        last = self.norm(pooled.permute(*self.dims))
        return self.fc(last.permute(0, 3, 1, 2).flatten(1))


def test_to_channels_last_and_back() -> None:
    converted, _ = convert_and_verify(reinit(ChannelsLastNorm()), (12, 12))
    assert steps_of(converted.plan, "permute") == [
        ("forward: permute", "kept (to channels last)"),
        ("forward: permute", "kept (to channels first)"),
    ]
    assert converted(torch.randn(2, 3, 15, 13)).shape == (2, 4, 4, 2)


def test_another_permutation_of_a_pooled_map_is_refused() -> None:
    reason = "permutes a pooled map with (0, 1, 3, 2)"
    assert ("permute", "forward: permute", reason) in refusals(
        ChannelsLastNorm((0, 1, 3, 2)), (12, 12)
    )
