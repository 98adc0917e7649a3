"""The rewrite rules, one per file, in the order the planner tries them on each node.

The first rule that matches a node decides it, so where two rules can match the same node the
more specific one comes first. Today one pair overlaps: an adaptive pool to 1×1 on a map that is
already 1×1 matches both ``FixedAdaptivePool`` (the identity, still trunk) and ``GlobalPool``
(the classifier's entry); it must stay in the trunk, so ``FixedAdaptivePool`` comes first (see
``tests/test_rule_order.py``, which also fails when a new rule overlaps an existing one).
"""

from __future__ import annotations

from .adaptive_pool import FixedAdaptivePool
from .base import Context, Decline, NoPayload, Rule, Step
from .batch_norm import BatchNorm
from .conv1x1 import Convolution1x1
from .elementwise import Elementwise
from .feature_axis import FeatureAxis
from .flatten import Flatten
from .global_pool import GlobalPool
from .layer_norm import LayerNorm
from .linear import LinearToConv
from .permute import Permute
from .shape_query import ShapeQuery

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

__all__ = ["DEFAULT_RULES", "Context", "Decline", "NoPayload", "Rule", "Step"]
