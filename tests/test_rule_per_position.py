"""Per-position rules: normalisation, activations, softmax, concatenation and branches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import convert_and_verify, reinit
from torch import nn

import fc2conv


class Trunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)


class NormHead(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 6)
        self.ln = nn.LayerNorm(6)
        self.out = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln(F.gelu(self.fc(self.bn(self.pooled(x)))))
        return F.log_softmax(self.out(x), dim=-1)


def test_batchnorm1d_and_layernorm_run_per_position() -> None:
    model = reinit(NormHead())
    converted, _ = convert_and_verify(model, (16, 16))
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


class TwoBranches(Trunk):
    """Two heads on the same features, summed; and a concatenation of avg and max pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 5)
        self.b = nn.Sequential(nn.Linear(16, 7), nn.ReLU(), nn.Linear(7, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        both = torch.cat([features.mean((2, 3)), features.amax((2, 3))], dim=1)
        return self.a(both) + 0.5 * self.b(both)


def test_summed_branches_and_concatenated_pools() -> None:
    converted, _ = convert_and_verify(reinit(TwoBranches()), (16, 16))
    assert converted(torch.randn(2, 3, 40, 24)).shape == (2, 5, 13, 5)


class ConstantBias(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.shift = nn.Parameter(torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x)) + self.shift


def test_constant_tensor_in_the_head_is_refused() -> None:
    with pytest.raises(
        fc2conv.UnsupportedModelError, match="combines the classifier features with a constant"
    ):
        fc2conv.convert(ConstantBias(), (16, 16))


class SoftmaxOverBatch(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc(self.pooled(x)), dim=0)


def test_softmax_across_images_is_refused() -> None:
    with pytest.raises(fc2conv.UnsupportedModelError, match="acts across images"):
        fc2conv.convert(SoftmaxOverBatch(), (16, 16))
