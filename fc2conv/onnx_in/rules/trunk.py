"""Any other node of the trunk: kept as it is. Its output's axes are those of the map it reads
(a ``Transpose`` permutes them); a node that changes the rank of a map is refused, since the
rows and columns could no longer be told apart."""

from __future__ import annotations

from typing import Any

from ..kinds import Trunk
from .base import Context, Decline, OnnxRule, Step, attribute, trunk_roles


class TrunkNode(OnnxRule):
    name = "trunk"

    def match(self, node: Any, ctx: Context) -> bool:
        return any(isinstance(ctx.kind(name), Trunk) for name in node.input)

    def check(self, node: Any, ctx: Context) -> Step | Decline:
        known = [
            kind.roles
            for name in node.input
            if isinstance(kind := ctx.kind(name), Trunk) and kind.roles is not None
        ]
        if not known:
            return self.keep(node, Trunk(None))  # a gate's per-image values
        if node.op_type == "Transpose":
            roles = known[0]
            perm = attribute(node, "perm", list(range(len(roles)))[::-1])
            return self.keep(node, Trunk(tuple(roles[axis] for axis in perm)))
        if ctx.shape(node.output[0]) is None:
            return self.decline(node, "has an output whose shape onnx shape inference cannot tell")
        same = trunk_roles(ctx, node)
        if same is None:
            return self.decline(
                node, "changes the rank of the feature map; fc2conv cannot tell its axes apart"
            )
        return self.keep(node, Trunk(same))
