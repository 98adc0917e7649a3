"""A ``Concat`` of per-image vectors along their features (average and max pooling side by side)
→ the same along axis 1 of the converted maps, cell by cell."""

from __future__ import annotations

from typing import Any

from ..kinds import Vec
from .base import Build, Context, Decline, OnnxRule, Step, attribute


class Concat(OnnxRule):
    name = "concat"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type == "Concat" and any(isinstance(ctx.kind(n), Vec) for n in node.input)

    def check(self, node: Any, ctx: Context) -> Step | Decline:
        kinds = [ctx.kind(name) for name in node.input]
        if not all(isinstance(kind, Vec) for kind in kinds):
            return self.decline(node, "joins the vector with a value that is not one")
        vec = kinds[0]
        assert isinstance(vec, Vec)
        if any(k.axis != vec.axis for k in kinds if isinstance(k, Vec)):
            return self.decline(node, "joins vectors whose features lie on different axes")
        if attribute(node, "axis", 1) % vec.rank != vec.axis:
            return self.decline(node, "joins vectors along another axis than the features")
        return self.step(node, "along axis 1 (the features of each cell)", vec, None)

    def rewrite(self, step: Step, build: Build) -> None:
        node = step.node
        build.emit("Concat", list(node.input), "concat", output=node.output[0], axis=1)
