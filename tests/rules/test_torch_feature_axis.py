"""feature-axis: softmax, normalisation, concatenation and reductions along the features run
along axis 1 of the map (the axis number fixed where the model says -1); one across images or
positions is refused, and so is a reduction that does not keep its axis."""

from __future__ import annotations

import pytest
import torch
from classifiers import FeatureOperations, Trunk, TwoBranches
from helpers import convert_and_verify, refusals, reinit, steps_of
from torch import nn

STYLES = {  # FeatureOperations style: the steps of feature-axis
    "normalize": [
        ("forward: normalize", "normalisation along feature axis -1 → 1"),
        ("softmax", "kept (softmax along feature axis 1)"),
    ],
    "norm-division": [
        ("forward: norm", "kept (reduction along feature axis 1)"),
        ("log_softmax", "softmax along feature axis -1 → 1"),
    ],
    "vector-norm": [
        ("forward: linalg_vector_norm", "reduction along feature axis -1 → 1"),
        ("implicit", "kept (softmax along feature axis 1)"),
    ],
    "mean-subtracted": [("forward: mean", "reduction along feature axis -1 → 1")],
    "cat-scaled": [("forward: cat", "kept (concatenation along feature axis 1)")],
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_operations_along_the_features(style: str) -> None:
    model = reinit(FeatureOperations(style))
    converted, _ = convert_and_verify(model, (16, 16))
    assert steps_of(converted.plan, "feature-axis") == STYLES[style]
    image = torch.randn(2, 3, 24, 20)
    with torch.no_grad():
        maps = converted(image)
    assert maps.shape == (2, 6, 5, 3)
    if style in ("normalize", "vector-norm"):  # softmax: each cell sums to 1
        assert torch.allclose(maps.sum(1), torch.ones(2, 5, 3), atol=1e-5)


@pytest.mark.parametrize("style", ["cat-scaled", "mean-subtracted"])
def test_linear_operations_along_the_features_allow_cam(style: str) -> None:
    convert_and_verify(reinit(FeatureOperations(style)), (16, 16), mode="cam")


def test_concatenated_pools() -> None:
    converted, _ = convert_and_verify(reinit(TwoBranches()), (16, 16))
    assert steps_of(converted.plan, "feature-axis") == [
        ("forward: cat", "kept (concatenation along feature axis 1)")
    ]


class SoftmaxOverBatch(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc(self.pooled(x)), dim=0)


def test_softmax_across_images_is_refused() -> None:
    reason = "its softmax acts across images or positions, not along the features"
    assert refusals(SoftmaxOverBatch(), (16, 16)) == [("feature-axis", "forward: softmax", reason)]


class SummedFeatures(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc(self.pooled(x))
        return logits - logits.sum(1)[:, None]


def test_a_reduction_that_drops_its_axis_is_refused() -> None:
    reason = (
        "reduces each image's features to one number; with keepdim=True it would stay one value per"
        " cell"
    )
    assert ("feature-axis", "forward: sum", reason) in refusals(SummedFeatures(), (16, 16))
