"""A flatten of a feature map (``Flatten``, a ``Reshape`` to N×features with its shape from a
constant or computed by ``Shape`` → ``Gather``/``Slice`` → ``Concat``, a ``Squeeze`` of a 1×1
map) → removed: the linear layer that reads it becomes a convolution over the map (see
:mod:`.linear`), which reads the same values in the flatten's order."""

from __future__ import annotations

from typing import Any

from ..kinds import NCHW, Flat, Trunk
from .base import Context, Decline, OnnxRule, Step

FLATTENS = ("Flatten", "Reshape", "Squeeze")


class Flatten(OnnxRule):
    name = "flatten"

    def match(self, node: Any, ctx: Context) -> bool:
        out = ctx.shape(node.output[0])
        return (
            node.op_type in FLATTENS
            and isinstance(ctx.kind(node.input[0]), Trunk)
            and out is not None
            and len(out) == 2
        )

    def check(self, node: Any, ctx: Context) -> Step | Decline:
        kind = ctx.kind(node.input[0])
        assert isinstance(kind, Trunk)
        in_shape, out_shape = ctx.shape(node.input[0]), ctx.shape(node.output[0])
        roles = kind.roles
        if roles is None or in_shape is None or sorted(map(str, roles)) != sorted(map(str, NCHW)):
            return self.decline(node, "flattens a tensor whose batch, channel, row and column "
                                "axes are not known")  # fmt: skip
        assert out_shape is not None
        if out_shape[0] != in_shape[0] or roles[0] != "N":
            return self.decline(node, "flattens the batch axis with the features")
        flat = Flat(node.input[0], roles, tuple(in_shape))
        return self.step(node, "removed (read by the next layer)", flat, None)

    def rewrite(self, step: Step, build: Any) -> None:
        """Nothing to build: the next layer reads the map."""
