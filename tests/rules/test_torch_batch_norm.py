"""batch-norm: a BatchNorm1d on feature vectors becomes a BatchNorm2d with the same parameters
and buffers (the very tensors, inplace); one on features that are not one vector per image is
refused."""

from __future__ import annotations

import torch
from classifiers import NormHead, Trunk
from helpers import convert_and_verify, refusals, reinit, steps_of
from torch import nn

import fc2conv


def test_batchnorm1d_runs_per_position() -> None:
    model = reinit(NormHead())
    converted, _ = convert_and_verify(model, (16, 16))
    assert steps_of(converted.plan, "batch-norm") == [
        ("bn", "BatchNorm1d → BatchNorm2d (same parameters and buffers)")
    ]
    bn = converted.graph_module.get_submodule("bn")
    assert isinstance(bn, nn.BatchNorm2d)
    assert torch.equal(bn.running_mean, model.bn.running_mean)
    assert torch.equal(bn.weight, model.bn.weight)
    assert converted(torch.randn(2, 3, 40, 24)).shape == (2, 3, 13, 5)


def test_batchnorm_shares_parameters_and_buffers_inplace() -> None:
    model = reinit(NormHead())
    converted = fc2conv.convert(model, (16, 16), inplace=True)
    bn = converted.graph_module.get_submodule("bn")
    assert bn.weight is model.bn.weight and bn.running_var is model.bn.running_var


class NormOfASequence(Trunk):
    """BatchNorm1d over N×8×1: a sequence of one feature vector, not a vector."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.pooled(x).unsqueeze(-1)).flatten(1))


def test_a_norm_of_features_that_are_not_vectors_is_refused() -> None:
    reason = "normalises features that are not one vector per image"
    assert ("batch-norm", "bn", reason) in refusals(NormOfASequence(), (16, 16))
