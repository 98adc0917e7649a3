"""layer-norm: a LayerNorm over the features runs channels-last at every position; one over more
than the feature axis is refused, and so is any in mode "cam" (it is not affine)."""

from __future__ import annotations

import torch
from classifiers import NormHead, Trunk
from helpers import convert_and_verify, refusals, reinit, steps_of
from torch import nn


def test_layernorm_runs_channels_last_at_every_position() -> None:
    converted, _ = convert_and_verify(reinit(NormHead()), (16, 16))
    assert steps_of(converted.plan, "layer-norm") == [
        ("ln", "LayerNorm over features → applied channels-last at every position")
    ]
    assert converted(torch.randn(2, 3, 40, 24)).shape == (2, 3, 13, 5)


class NormedVector(Trunk):
    """LayerNorm on the pooled features; ``shape`` (8, 1): on N×8×1, over both axes."""

    def __init__(self, shape: tuple[int, ...] = (8,)) -> None:
        super().__init__()
        self.shape = shape
        self.ln = nn.LayerNorm(shape)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pooled(x)
        if len(self.shape) == 2:
            return self.fc(self.ln(x.unsqueeze(-1)).flatten(1))
        return self.fc(self.ln(x))


def test_cam_refuses_a_layernorm() -> None:
    reason = (
        "LayerNorm is not affine; mode='cam' needs an affine classifier (Linear, Dropout, "
        "BatchNorm); use mode='window'"
    )
    assert refusals(NormedVector(), (16, 16), mode="cam") == [("layer-norm", "ln", reason)]


def test_a_layernorm_over_more_than_the_features_is_refused() -> None:
    reason = "normalises over more than the feature axis"
    assert ("layer-norm", "ln", reason) in refusals(NormedVector((8, 1)), (16, 16))
