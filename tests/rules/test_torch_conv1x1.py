"""conv1x1: a 1×1 convolution (stride 1, no padding) of a pooled map is already per position
and is kept; a larger or padded one would mix the cells of a map, and is refused."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import convert_and_verify, refusals, reinit, steps_of
from torch import nn


class ConvolutionalHead(nn.Module):
    """Trunk → global pool to N×8×1×1 → ``head`` convolution → ReLU → 1×1 convolution → flatten
    (a classifier whose head is written with convolutions)."""

    def __init__(self, head: nn.Conv2d | None = None) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        self.head = head or nn.Conv2d(8, 6, 1)
        self.out = nn.Conv2d(6, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.out(F.relu(self.head(pooled))).flatten(1)


def test_1x1_convolutions_of_the_pooled_map_are_kept() -> None:
    converted, _ = convert_and_verify(reinit(ConvolutionalHead()), (12, 12))
    kept = "kept (1x1 convolution)"
    assert steps_of(converted.plan, "conv1x1") == [("head", kept), ("out", kept)]
    assert converted(torch.randn(2, 3, 14, 17)).shape == (2, 4, 3, 6)


def test_a_3x3_convolution_of_the_pooled_map_is_refused() -> None:
    model = ConvolutionalHead(nn.Conv2d(8, 6, 3, padding=1))
    reason = "a (3, 3) convolution of a pooled 1x1 map has no per-position equivalent"
    assert ("conv1x1", "head", reason) in refusals(model, (12, 12))
