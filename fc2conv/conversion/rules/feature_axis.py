"""softmax, log_softmax and concatenation along the feature axis.

On N×F the feature axis is 1 (or -1); on the converted N×F×rows×cols map it is axis 1, and a
softmax or a concatenation along axis 1 of the map is that operation on every cell's features.
The rewrite only fixes the axis number.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx

from ..layouts import ChannelsLastMap, Map, Vec
from .base import (
    Context,
    Decline,
    Rule,
    Step,
    argument,
    function_is,
    method_is,
    same_layout,
    set_argument,
)
from .elementwise import CAM_HINT

FUNCTIONS = (F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, torch.cat, torch.concat)


@dataclass(frozen=True)
class AxisOne:
    pass


class FeatureAxis(Rule[AxisOne]):
    name = "feature-axis"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_op = function_is(node, *FUNCTIONS) or method_is(node, "softmax", "log_softmax")
        return is_op and bool(ctx.classifier_inputs(node))

    def check(self, node: fx.Node, ctx: Context) -> Step[AxisOne] | Decline:
        is_cat = function_is(node, torch.cat, torch.concat)
        if not is_cat and ctx.mode == "cam":
            return self.decline(node, f"softmax is not affine; {CAM_HINT}")
        layout = same_layout(node, ctx)
        if is_cat:
            parts = node.args[0]
            inputs = ctx.classifier_inputs(node)
            if not isinstance(parts, (list, tuple)) or any(
                not isinstance(p, fx.Node) or p not in inputs for p in parts
            ):
                return self.decline(node, "concatenates features with other tensors")
        shape = ctx.shape(node)
        assert shape is not None
        dim = argument(node, 1, "dim", 0 if is_cat else None)
        if not isinstance(dim, int):
            return self.decline(node, "its axis is not a constant")
        if isinstance(layout, (Vec, Map)) and dim % len(shape) == 1:
            if dim == 1:
                return self.keep(node, "kept (feature axis 1)", layout)
            return self.step(node, f"feature axis {dim} → 1", layout, AxisOne())
        if isinstance(layout, ChannelsLastMap) and dim % len(shape) == 3:
            return self.keep(node, "kept (feature axis last)", layout)
        return self.decline(node, "acts across images or positions, not along features")

    def rewrite(self, step: Step[AxisOne], ctx: Context) -> None:
        set_argument(step.node, 1, "dim", 1)
