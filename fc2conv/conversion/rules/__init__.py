"""The rewrite rules, one per file, in the order the planner tries them on each node.

The first rule that matches a node decides it, so the order matters wherever two rules match the
same node: the more specific one must come first. The order follows the pipeline (the
classifier's entries, then the layers that change, then those kept as they are, then shape
queries). Today only one pair overlaps: an adaptive pool to 1×1 on a map that is already 1×1
matches both ``FixedAdaptivePool`` and ``GlobalPool``, and both remove it. ``tests/
rules/test_torch_order.py`` pins this order and fails when a new rule claims a node another rule
claims, so that such a rule is placed deliberately.
"""

from __future__ import annotations

from .adaptive_pool import FixedAdaptivePool
from .base import Context, Decline, NoPayload, Rule, Step
from .batch_norm import BatchNorm
from .conv1x1 import Convolution1x1
from .elementwise import Elementwise
from .feature_axis import FeatureAxis
from .feature_index import FeatureIndex
from .flat_affine import FlatAffine
from .flat_concat import FlatConcat
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
    FlatAffine(),
    FlatConcat(),
    LinearToConv(),
    BatchNorm(),
    LayerNorm(),
    Elementwise(),
    FeatureAxis(),
    FeatureIndex(),
    Permute(),
    Convolution1x1(),
    ShapeQuery(),
)

__all__ = ["DEFAULT_RULES", "Context", "Decline", "NoPayload", "Rule", "Step"]
