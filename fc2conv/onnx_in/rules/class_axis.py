"""``Softmax``, ``LogSoftmax`` or ``Hardmax`` over the classes of the per-image vector → the same
over axis 1 of the converted N×classes×rows×cols map, so over each cell's classes.

Before opset 13 these operators flatten every axis from ``axis`` on and normalise over all of
them: on a map that would mix classes, rows and columns, so there the converted model moves the
classes last, normalises over the last axis and moves them back."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kinds import Vec
from .base import Build, Context, Decline, OnnxRule, Step, attribute

#: the class-axis normalisations, and what an output then holds
ENDINGS = {"Softmax": "softmax", "LogSoftmax": "log-softmax", "Sigmoid": "sigmoid"}


class ClassAxis(OnnxRule):
    name = "class axis"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type in ("Softmax", "LogSoftmax", "Hardmax") and isinstance(
            ctx.kind(node.input[0]), Vec
        )

    def check(self, node: Any, ctx: Context) -> Step | Decline:
        vec = ctx.kind(node.input[0])
        shape = ctx.shape(node.input[0])
        assert isinstance(vec, Vec) and shape is not None
        rank = len(shape)
        axis = attribute(node, "axis", 1 if ctx.opset < 13 else -1) % rank
        if ctx.opset < 13:  # the axes from `axis` on, flattened, must hold exactly the features
            fits = axis <= vec.axis and int(np.prod(shape[1:axis])) == 1
        else:
            fits = axis == vec.axis
        if not fits:
            return self.decline(node, f"normalises along axis {axis}, not along the classes")
        if node.op_type in ENDINGS:
            ctx.endings[node.output[0]] = ENDINGS[node.op_type]
        if ctx.opset >= 13:
            action = f"{node.op_type} over axis 1 (the classes of each cell)"
        else:
            action = f"{node.op_type} over the classes of each cell (opset {ctx.opset})"
        return self.step(node, action, vec, None)

    def rewrite(self, step: Step, build: Build) -> None:
        node = step.node
        op, output = node.op_type, node.output[0]
        if build.ctx.opset >= 13:
            build.emit(op, [node.input[0]], op.lower(), output=output, axis=1)
            return
        last = build.emit("Transpose", [node.input[0]], "classes_last", perm=[0, 2, 3, 1])
        normed = build.emit(op, [last], op.lower(), axis=3)
        build.emit("Transpose", [normed], "classes_first", output=output, perm=[0, 3, 1, 2])
