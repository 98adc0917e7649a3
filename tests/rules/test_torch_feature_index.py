"""feature-index: slices of the feature axis carry over to maps (``x[..., a:b]`` as
``x[:, a:b]``), new 1x1 axes go; an index that picks single features, images or positions is
refused."""

from __future__ import annotations

import torch
from classifiers import FeatureOperations, Trunk
from helpers import convert_and_verify, refusals, reinit, steps_of
from torch import nn


def test_slices_of_the_features() -> None:
    converted, _ = convert_and_verify(reinit(FeatureOperations("slices")), (16, 16))
    assert steps_of(converted.plan, "feature-index") == [
        ("forward: getitem", "kept (slice of the features, [:4])"),
        ("forward: getitem", "slice of the last axis → slice of feature axis 1 ([4:])"),
    ]
    with torch.no_grad():
        maps = converted(torch.randn(2, 3, 24, 20))
    assert maps.shape == (2, 6, 5, 3)
    assert torch.allclose(maps.sum(1), torch.ones(2, 5, 3), atol=1e-5)  # softmax per cell


def test_a_slice_after_a_concatenation_allows_cam() -> None:
    converted, _ = convert_and_verify(reinit(FeatureOperations("cat-scaled")), (16, 16), mode="cam")
    assert steps_of(converted.plan, "feature-index") == [
        ("forward: getitem", "kept (slice of the features, [:8])")
    ]


def test_new_1x1_axes_are_removed() -> None:
    converted, _ = convert_and_verify(reinit(FeatureOperations("none-axes")), (16, 16))
    assert steps_of(converted.plan, "feature-index") == [
        ("forward: getitem", "new 1x1 axes removed")
    ]
    assert converted(torch.randn(2, 3, 24, 20)).shape == (2, 6, 5, 3)


class IndexedFeature(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x))[:, 0]


def test_selecting_one_feature_is_refused_with_the_index() -> None:
    reason = (
        "indexes the classifier features with (slice(None, None, None), 0), which selects across "
        "images, positions or single features; only slices of the feature axis carry over to maps"
    )
    assert refusals(IndexedFeature(), (16, 16)) == [("feature-index", "forward: getitem", reason)]
