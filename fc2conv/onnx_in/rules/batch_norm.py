"""``BatchNormalization`` of the per-image vector (N×F or N×F×1×1, features on axis 1) → the
same node on the converted N×F×rows×cols map: it normalises axis 1 per feature, at every cell.
(A batch norm of a flattened map, one statistic per flattened feature, has no such form.)"""

from __future__ import annotations

from typing import Any

from ..kinds import Flat, Vec
from .base import Build, Context, Decline, OnnxRule, Step


class BatchNorm(OnnxRule):
    name = "batch norm"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type == "BatchNormalization" and isinstance(
            ctx.kind(node.input[0]), (Vec, Flat)
        )

    def check(self, node: Any, ctx: Context) -> Step | Decline:
        kind = ctx.kind(node.input[0])
        if isinstance(kind, Flat):
            return self.decline(
                node, "normalises each flattened feature; only value-by-value operations and "
                "dropout have an exact form before the first linear layer"
            )  # fmt: skip
        assert isinstance(kind, Vec)
        if kind.axis != 1:
            return self.decline(
                node, f"normalises axis 1, but the features are on axis {kind.axis}"
            )
        if any(ctx.constant(name) is None for name in node.input[1:5]):
            return self.decline(node, "has statistics that are not constants")
        return self.step(node, "on each cell (inference mode)", kind, None)

    def rewrite(self, step: Step, build: Build) -> None:
        new = build.copy(step.node, {})
        kept = [a for a in new.attribute if a.name not in ("spatial", "training_mode")]
        del new.attribute[:]
        new.attribute.extend(kept)
