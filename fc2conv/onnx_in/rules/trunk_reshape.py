"""A ``Reshape`` in the trunk that keeps batch, rows and columns (ShuffleNet's channel shuffle)
and whose shape the file fixes: the same reshape with batch, rows and columns copied at run time
(``Reshape``'s 0), so that it runs at every size. Its channels are split or joined in their own
order, between a ``Transpose`` that brings the batch, rows and columns first and one that
restores the file's axis order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kinds import NCHW, Roles, Trunk
from .base import Build, Context, Decline, OnnxRule, Step


@dataclass(frozen=True)
class ReshapePayload:
    roles: Roles  #: the input's axes
    out_roles: Roles  #: the output's
    channels: tuple[int, ...]  #: the output's channel axes


class TrunkReshape(OnnxRule[ReshapePayload]):
    name = "trunk reshape"

    def match(self, node: Any, ctx: Context) -> bool:
        kind = ctx.kind(node.input[0]) if node.input else None
        return node.op_type == "Reshape" and isinstance(kind, Trunk) and kind.roles is not None

    def check(self, node: Any, ctx: Context) -> Step[ReshapePayload] | Decline:
        kind = ctx.kind(node.input[0])
        assert isinstance(kind, Trunk) and kind.roles is not None
        roles = kind.roles
        in_shape, out_shape = ctx.shape(node.input[0]), ctx.shape(node.output[0])
        if in_shape is None or out_shape is None:
            return self.decline(node, "has a shape onnx shape inference cannot resolve")
        out_roles: list[str | None] = [None] * len(out_shape)
        if roles[0] == "N" and out_shape[0] == in_shape[0]:
            out_roles[0] = "N"
        if roles[-2:] == ("H", "W") and out_shape[-2:] == in_shape[-2:] and len(out_shape) > 2:
            out_roles[-2:] = ["H", "W"]
        middle_in = int(np.prod(in_shape[1:-2]))
        middle_out = int(np.prod(out_shape[1:-2]))
        if out_roles[-2:] != ["H", "W"] or out_roles[0] != "N" or middle_in != middle_out:
            return self.decline(
                node, "reshapes the feature map across its rows or columns; it has no "
                "per-position form"
            )  # fmt: skip
        new = Trunk(tuple(out_roles))
        if ctx.constant(node.input[1]) is None:
            return self.keep(node, new, "kept (its shape is computed from the tensor)")
        channels = tuple(size for size, role in zip(out_shape, out_roles, strict=True) if not role)
        action = "fixed shape → batch, rows and columns copied (Reshape's 0), channels split"
        return self.step(node, action, new, ReshapePayload(roles, tuple(out_roles), channels))

    def rewrite(self, step: Step[ReshapePayload], build: Build) -> None:
        p = step.payload
        first = [p.roles.index(role) for role in NCHW if role is not None]
        perm = first + [axis for axis in range(len(p.roles)) if p.roles[axis] is None]
        moved = build.emit("Transpose", [step.node.input[0]], "spatial_first", perm=perm)
        target = build.const(np.array([0, 0, 0, *p.channels], np.int64), "shape")
        split = build.emit("Reshape", [moved, target], "reshaped")
        order = {"N": 0, "H": 1, "W": 2}
        channel_axes = iter(range(3, 3 + len(p.channels)))
        back = [order[role] if role else next(channel_axes) for role in p.out_roles]
        build.emit("Transpose", [split], "restored", output=step.node.output[0], perm=back)
