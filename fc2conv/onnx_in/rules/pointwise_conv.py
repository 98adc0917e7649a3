"""A 1×1 ``Conv`` with stride 1 and no padding on an N×F×1×1 vector (SqueezeNet's and the
MobileNets' convolutional classifiers): the same on every cell of the converted map, kept as it
is."""

from __future__ import annotations

from typing import Any

from ..kinds import Vec
from .base import Context, Decline, OnnxRule, Step, attribute


class PointwiseConv(OnnxRule):
    name = "pointwise conv"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type == "Conv" and isinstance(ctx.kind(node.input[0]), Vec)

    def check(self, node: Any, ctx: Context) -> Step | Decline:
        vec = ctx.kind(node.input[0])
        assert isinstance(vec, Vec)
        weight = ctx.shape(node.input[1]) or []
        pointwise = (
            vec.axis == 1
            and weight[2:] == [1, 1]
            and list(attribute(node, "strides", [1, 1])) == [1, 1]
            and not any(attribute(node, "pads", [0, 0, 0, 0]))
            and attribute(node, "auto_pad", "NOTSET") in ("NOTSET", "VALID")
        )
        if not pointwise:
            return self.decline(node, "in the classifier head has no exact convolutional form")
        return self.keep(node, Vec(4), "kept (1x1 on each cell)")
