"""The ONNX rewrite rules, one per file, in the order the planner tries them on each node.

The first rule that matches a node decides it, so the order matters wherever two rules match
the same node: shape queries first (a ``Shape`` of any tensor), the pools and flattens that
start the classifier before the trunk rules that would keep those nodes, the channels-last
``MatMul`` before the catch-all ``TrunkNode``. ``tests/rules/test_onnx_order.py`` pins this.
"""

from __future__ import annotations

from .base import Build, Context, Decline, NoPayload, OnnxRule, Step
from .batch_norm import BatchNorm
from .binary import Binary
from .channels_matmul import ChannelsMatMul
from .class_axis import ClassAxis
from .concat import Concat
from .elementwise import Elementwise
from .feature_reduction import FeatureReduction
from .flat_concat import FlatConcat
from .flatten import Flatten
from .layer_norm import LayerNorm
from .linear import Linear
from .pointwise_conv import PointwiseConv
from .shape_query import ShapeQuery
from .trunk import TrunkNode
from .trunk_reshape import TrunkReshape
from .vector_shape import VectorShape
from .window_pool import WindowPool

ONNX_RULES: tuple[OnnxRule, ...] = (
    ShapeQuery(),
    WindowPool(),
    Flatten(),
    TrunkReshape(),
    ChannelsMatMul(),
    TrunkNode(),
    VectorShape(),
    Linear(),
    ClassAxis(),
    Elementwise(),
    BatchNorm(),
    LayerNorm(),
    Binary(),
    FeatureReduction(),
    FlatConcat(),
    Concat(),
    PointwiseConv(),
)

__all__ = ["ONNX_RULES", "Build", "Context", "Decline", "NoPayload", "OnnxRule", "Step"]
