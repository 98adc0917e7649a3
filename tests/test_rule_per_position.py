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


def test_per_feature_constant_meets_the_features_on_their_axis() -> None:
    converted, _ = convert_and_verify(reinit(ConstantBias()), (16, 16))
    assert "per-feature constant viewed as 1xFx1x1" in str(converted.plan)


class BatchSizedConstant(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.table = nn.Parameter(torch.ones(2, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x)) + self.table  # works only for a batch of 2


def test_constant_that_broadcasts_along_images_is_refused() -> None:
    with pytest.raises(
        fc2conv.UnsupportedModelError, match="with a 2x4 constant, which would broadcast"
    ):
        fc2conv.convert(BatchSizedConstant(), (16, 16))


class FeatureOperations(Trunk):
    """Operations along the features, as real heads spell them."""

    def __init__(self, style: str) -> None:
        super().__init__()
        self.style = style
        self.fc = nn.Linear(8, 6)
        self.scale = nn.Parameter(torch.tensor(1.7))
        self.softmax = nn.Softmax(dim=1)
        self.log_softmax = nn.LogSoftmax(dim=-1)
        self.implicit = nn.Softmax()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pooled(x)
        if self.style == "normalize":
            x = F.normalize(x, dim=-1)
        elif self.style == "norm-division":
            x = x / x.norm(dim=1, keepdim=True)
        elif self.style == "vector-norm":
            x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        elif self.style == "slices":
            x = torch.cat([x[:, :4] * 2, x[..., 4:]], 1)
        elif self.style == "cat-scaled":
            x = torch.cat([x, 2 * x], 1)[:, :8]
        elif self.style == "learnable-scale":
            x = x * self.scale
        elif self.style == "mean-subtracted":
            x = x - x.mean(-1, keepdim=True)
        elif self.style == "unsqueeze":
            x = x.unsqueeze(-1).unsqueeze(-1).flatten(1)
        elif self.style == "none-axes":
            x = x[:, :, None, None].flatten(1)
        x = self.fc(x)
        if self.style in ("normalize", "slices"):
            return self.softmax(x)
        if self.style == "norm-division":
            return self.log_softmax(x)
        if self.style == "vector-norm":
            return self.implicit(x)
        return x


FEATURE_STYLES = [
    "normalize",
    "norm-division",
    "vector-norm",
    "slices",
    "cat-scaled",
    "learnable-scale",
    "mean-subtracted",
    "unsqueeze",
    "none-axes",
]


@pytest.mark.parametrize("style", FEATURE_STYLES)
def test_operations_along_the_features(style: str) -> None:
    model = reinit(FeatureOperations(style))
    converted, _ = convert_and_verify(model, (16, 16))
    image = torch.randn(2, 3, 24, 20)
    with torch.no_grad():
        maps = converted(image)
        assert maps.shape == (2, 6, 5, 3)
        if style in ("normalize", "slices", "vector-norm"):  # softmax: each cell sums to 1
            assert torch.allclose(maps.sum(1), torch.ones(2, 5, 3), atol=1e-5)


@pytest.mark.parametrize("style", ["cat-scaled", "learnable-scale", "mean-subtracted", "unsqueeze"])
def test_linear_operations_along_the_features_allow_cam(style: str) -> None:
    model = reinit(FeatureOperations(style))
    convert_and_verify(model, (16, 16), mode="cam")


class IndexedFeature(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x))[:, 0]


def test_selecting_one_feature_is_refused_with_the_index() -> None:
    with pytest.raises(fc2conv.UnsupportedModelError, match="indexes the classifier features"):
        fc2conv.convert(IndexedFeature(), (16, 16))


class SoftmaxOverBatch(Trunk):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc(self.pooled(x)), dim=0)


def test_softmax_across_images_is_refused() -> None:
    with pytest.raises(fc2conv.UnsupportedModelError, match="acts across images"):
        fc2conv.convert(SoftmaxOverBatch(), (16, 16))
