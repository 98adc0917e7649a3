"""The rewrite rules, in the order the converter tries them on each node."""

from __future__ import annotations

from .adaptive_pool import FixedAdaptivePool
from .base import Context, Decline, Rule, Step
from .flatten import Flatten
from .global_pool import GlobalPool
from .linear import LinearToConv
from .per_position import (
    BatchNorm,
    Convolution1x1,
    Elementwise,
    FeatureAxis,
    LayerNorm,
    Permute,
    ShapeQuery,
)

DEFAULT_RULES: tuple[Rule, ...] = (
    FixedAdaptivePool(),
    GlobalPool(),
    Flatten(),
    LinearToConv(),
    BatchNorm(),
    LayerNorm(),
    Elementwise(),
    FeatureAxis(),
    Permute(),
    Convolution1x1(),
    ShapeQuery(),
)

__all__ = ["DEFAULT_RULES", "Context", "Decline", "Rule", "Step"]
