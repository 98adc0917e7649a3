"""elementwise: activations, dropout, sums of branches and scalar or per-feature constants are
kept per position (a per-feature constant viewed as 1xFx1x1); a constant that would broadcast
along other axes of a map, or a tensor computed elsewhere, is refused, and so is a non-affine
function in mode "cam"."""

from __future__ import annotations

import torch
from classifiers import FeatureOperations, Pooled, Trunk, TwoBranches
from helpers import convert_and_verify, refusals, reinit, steps_of
from torch import nn


def test_summed_branches_and_concatenated_pools() -> None:
    converted, _ = convert_and_verify(reinit(TwoBranches()), (16, 16))
    assert ("forward: add", "kept (elementwise)") in steps_of(converted.plan, "elementwise")
    assert converted(torch.randn(2, 3, 40, 24)).shape == (2, 5, 13, 5)


class ConstantBias(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.shift = nn.Parameter(torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x)) + self.shift


def test_per_feature_constant_meets_the_features_on_their_axis() -> None:
    converted, _ = convert_and_verify(reinit(ConstantBias()), (16, 16))
    assert steps_of(converted.plan, "elementwise") == [
        ("forward: add", "per-feature constant viewed as 1xFx1x1")
    ]


def test_a_learnable_scalar_scale() -> None:
    converted, _ = convert_and_verify(reinit(FeatureOperations("learnable-scale")), (16, 16))
    assert steps_of(converted.plan, "elementwise") == [("forward: mul", "kept (elementwise)")]
    assert converted(torch.randn(2, 3, 24, 20)).shape == (2, 6, 5, 3)


def test_a_learnable_scalar_scale_allows_cam() -> None:
    convert_and_verify(reinit(FeatureOperations("learnable-scale")), (16, 16), mode="cam")


class BatchSizedConstant(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.table = nn.Parameter(torch.ones(2, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x)) + self.table  # works only for a batch of 2


def test_constant_that_broadcasts_along_images_is_refused() -> None:
    reason = (
        "combines the classifier features with a 2x4 constant, which would broadcast along the "
        "wrong axes of a map"
    )
    assert ("elementwise", "forward: add", reason) in refusals(BatchSizedConstant(), (16, 16))


class CountedFeatures(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pooled(x)
        return self.fc(features / features.size(1))  # a number the trace computes


def test_a_tensor_computed_elsewhere_is_refused() -> None:
    reason = "combines the classifier features with a tensor computed elsewhere"
    assert ("elementwise", "forward: truediv", reason) in refusals(CountedFeatures(), (16, 16))


def test_cam_refuses_a_nonlinear_head_and_says_use_window() -> None:
    reason = (
        "is not affine; mode='cam' needs an affine classifier (Linear, Dropout, BatchNorm); use "
        "mode='window'"
    )
    assert refusals(Pooled("mean", "mlp"), (20, 20), mode="cam") == [("elementwise", "act", reason)]
