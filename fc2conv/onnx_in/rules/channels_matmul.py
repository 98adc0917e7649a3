"""A ``MatMul`` of a trunk map by a constant along its channels (ConvNeXt's channels-last
Linear on N×H×W×C) is a 1×1 convolution already: kept. Along rows or columns it mixes positions
and has no per-position form."""

from __future__ import annotations

from typing import Any

from ..kinds import Trunk
from .base import Context, Decline, OnnxRule, Step


class ChannelsMatMul(OnnxRule):
    name = "channels matmul"

    def match(self, node: Any, ctx: Context) -> bool:
        kind = ctx.kind(node.input[0])
        return node.op_type in ("MatMul", "Gemm") and isinstance(kind, Trunk)

    def check(self, node: Any, ctx: Context) -> Step | Decline:
        kind = ctx.kind(node.input[0])
        assert isinstance(kind, Trunk)
        if kind.roles is None:  # a gate's per-image values
            return self.keep(node, Trunk(None))
        if ctx.constant(node.input[1]) is None:
            return self.decline(node, "multiplies a feature map by a value computed at run time")
        last = kind.roles[-1]
        if last is not None:
            where = {"H": "rows", "W": "columns", "N": "images"}[last]
            return self.decline(
                node, f"multiplies a feature map along its {where}, not per position"
            )
        return self.keep(node, Trunk(kind.roles), "kept (a 1x1 convolution over the channels)")
