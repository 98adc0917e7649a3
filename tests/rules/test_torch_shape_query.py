"""shape-query: ``x.size(0)`` and ``x.shape[0]`` of the classifier features keep their meaning
on maps (the batch size); a query of another dimension that the converted graph still reads is
refused once the graph is rewritten."""

from __future__ import annotations

import pytest
import torch
from classifiers import Trunk
from helpers import convert_and_verify, reinit, steps_of
from torch import nn

import fc2conv


class ShapedHead(Trunk):
    """Pooled features reshaped with their own batch size; ``bounded``: sliced up to their own
    feature count."""

    def __init__(self, bounded: bool = False) -> None:
        super().__init__()
        self.bounded = bounded
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pooled(x)
        x = x[:, : x.shape[1]] if self.bounded else x.view(x.size(0), -1)
        return self.fc(x)


def test_the_batch_size_of_the_features_is_kept() -> None:
    converted, _ = convert_and_verify(reinit(ShapedHead()), (16, 16))
    assert steps_of(converted.plan, "shape-query") == [("forward: size", "shape query")]
    assert converted(torch.randn(2, 3, 24, 20)).shape == (2, 4, 5, 3)


def test_a_query_of_the_feature_count_is_refused() -> None:
    with pytest.raises(fc2conv.UnsupportedModelError) as info:
        fc2conv.convert(ShapedHead(bounded=True), (16, 16))
    assert steps_of(fc2conv.plan(ShapedHead(bounded=True), (16, 16)), "shape-query") == [
        ("forward: getattr", "shape query")
    ]
    assert info.value.reasons == [
        (
            "forward: getattr",
            "reads the shape of the classifier features, which changes when they become maps",
        )
    ]
