"""Property: a random small CNN classifier converts and verifies, or is refused; never a mismatch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import RTOL, reinit
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from torch import nn

import fc2conv

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "hardswish": nn.Hardswish, "tanh": nn.Tanh}


class RandomClassifier(nn.Module):
    def __init__(self, spec: dict) -> None:
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        channels = 3
        for kernel, stride, padding, width, norm, pool in spec["blocks"]:
            layers.append(nn.Conv2d(channels, width, kernel, stride, min(padding, kernel // 2)))
            if norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(ACTIVATIONS[spec["activation"]]())
            if pool:
                layers.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.channels = channels
        self.flatten = nn.Flatten()
        self.adaptive = nn.AdaptiveAvgPool2d(spec["adaptive"]) if spec["adaptive"] else None
        head: list[nn.Module] = []
        self.head = nn.ModuleList(head)
        self.features_out: int | None = None

    def build_head(self, features: int) -> None:
        width = features
        for index, out in enumerate(self.spec["head"]):
            last = index == len(self.spec["head"]) - 1
            self.head.append(nn.Linear(width, out))
            if not last:
                if self.spec["bn1d"]:
                    self.head.append(nn.BatchNorm1d(out))
                self.head.append(ACTIVATIONS[self.spec["activation"]]())
                if self.spec["dropout"]:
                    self.head.append(nn.Dropout(0.5))
            width = out

    def collapse(self, x: torch.Tensor) -> torch.Tensor:
        style = self.spec["collapse"]
        if self.adaptive is not None:
            x = self.adaptive(x)
        if style == "flatten":
            return torch.flatten(x, 1)
        if style == "view":
            return x.view(x.size(0), -1)
        if style == "nn.Flatten":
            return self.flatten(x)
        if style == "mean":
            return x.mean((2, 3))
        if style == "amax":
            return x.amax((2, 3))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.collapse(self.features(x))
        for layer in self.head:
            x = layer(x)
        return x


blocks = st.lists(
    st.tuples(
        st.integers(1, 3),
        st.integers(1, 2),
        st.integers(0, 1),
        st.integers(2, 6),
        st.booleans(),
        st.sampled_from([None, "max", "avg"]),
    ),
    min_size=1,
    max_size=3,
)
specs = st.fixed_dictionaries(
    {
        "blocks": blocks,
        "activation": st.sampled_from(sorted(ACTIVATIONS)),
        "collapse": st.sampled_from(["flatten", "view", "nn.Flatten", "mean", "amax", "adaptive"]),
        "adaptive": st.sampled_from([None, 1, 2]),
        "head": st.lists(st.integers(2, 8), min_size=1, max_size=3),
        "bn1d": st.booleans(),
        "dropout": st.booleans(),
        "mode": st.sampled_from(["window", "cam"]),
        "size": st.tuples(st.integers(10, 24), st.integers(10, 24)),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_random_classifier_converts_exactly_or_is_refused(spec: dict) -> None:
    model = RandomClassifier(spec)
    height, width = spec["size"]
    try:
        with torch.no_grad():
            features = model.collapse(model.features(torch.zeros(2, 3, height, width)))
    except RuntimeError:
        assume(False)  # the trunk itself does not run at this size
    model.build_head(features.shape[1])
    reinit(model, seed=len(str(spec)))
    try:
        converted = fc2conv.convert(model, (height, width), mode=spec["mode"])
    except fc2conv.UnsupportedModelError as refused:
        event(f"refused: {refused.reasons[0] if refused.reasons else refused}")
        return
    event("converted")
    report = fc2conv.verify(model, converted, rtol=RTOL)  # raises EquivalenceError on mismatch
    assume(report.output_scale > 1e-3)
    large = (height + 2 * converted.geometry.stride[0] + 3, width + converted.geometry.stride[1])
    with torch.no_grad():
        maps = converted(torch.randn(2, 3, *large))
    assert maps.shape[-2:] == converted.output_size(*large)
