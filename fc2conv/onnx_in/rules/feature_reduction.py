"""A reduction over the features of the per-image vector that keeps its axis (the norm of an
L2-normalised embedding, a sum) → the same over axis 1 of the converted map, so over each cell's
features."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kinds import Vec
from .base import Build, Context, Decline, OnnxRule, Step, attribute, axes_of

REDUCTIONS = (
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
)  # fmt: skip


class FeatureReduction(OnnxRule):
    name = "feature reduction"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type in REDUCTIONS and isinstance(ctx.kind(node.input[0]), Vec)

    def check(self, node: Any, ctx: Context) -> Step | Decline:
        vec = ctx.kind(node.input[0])
        assert isinstance(vec, Vec)
        axes = axes_of(ctx, node)
        if not axes or [axis % vec.rank for axis in axes] != [vec.axis]:
            return self.decline(node, f"reduces over axes {axes}, not over the features alone")
        if not attribute(node, "keepdims", 1):
            return self.decline(node, "drops the feature axis (keepdims=0)")
        return self.step(node, "over axis 1 (the features of each cell)", vec, None)

    def rewrite(self, step: Step, build: Build) -> None:
        from onnx import helper

        new = build.copy(step.node, {})
        if len(new.input) > 1 and new.input[1]:
            new.input[1] = build.const(np.array([1], np.int64), "axes")
        else:
            kept = [a for a in new.attribute if a.name != "axes"]
            del new.attribute[:]
            new.attribute.extend([*kept, helper.make_attribute("axes", [1])])
