"""A reshape of the per-image vector that keeps it one vector per image: ``Reshape``,
``Flatten``, ``Squeeze``, ``Unsqueeze`` or ``Transpose`` between N×F, N×F×1×1 and N×1×1×F (Keras'
and tf2onnx's channels-last pooled vectors, PyTorch's ``view(n, -1)`` and ``permute``). Only axes
of size one move, so the values keep their order: in the converted graph, where the vector is an
N×F×rows×cols map, it is an ``Identity``; the plan records the feature axis of the new shape."""

from __future__ import annotations

from typing import Any

from ..kinds import Vec
from .base import Build, Context, Decline, OnnxRule, Step, attribute

RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose")


def _text(shape: list[int]) -> str:
    return "x".join(map(str, shape))


class VectorShape(OnnxRule):
    name = "vector shape"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type in RESHAPES and isinstance(ctx.kind(node.input[0]), Vec)

    def check(self, node: Any, ctx: Context) -> Step | Decline:
        vec = ctx.kind(node.input[0])
        assert isinstance(vec, Vec)
        in_shape, out_shape = ctx.shape(node.input[0]), ctx.shape(node.output[0])
        if in_shape is None or out_shape is None:
            return self.decline(node, "has a shape onnx shape inference cannot resolve")
        features = in_shape[vec.axis]
        if node.op_type == "Transpose":
            perm = list(attribute(node, "perm", range(len(in_shape) - 1, -1, -1)))
            axis = perm.index(vec.axis) if perm[0] == 0 else -1
        else:
            axes = [i for i, size in enumerate(out_shape) if i and size == features]
            others = [size for i, size in enumerate(out_shape) if i and i not in axes[:1]]
            fits = out_shape[0] == in_shape[0] and axes and all(s == 1 for s in others)
            axis = axes[0] if fits else -1
        if axis < 1:
            return self.decline(
                node, f"reshapes the per-image vector ({_text(in_shape)}) to {_text(out_shape)}, "
                "which is not one vector per image"
            )  # fmt: skip
        if node.input[0] in ctx.endings:
            ctx.endings[node.output[0]] = ctx.endings[node.input[0]]
        new = Vec(len(out_shape), axis)
        return self.step(node, f"→ Identity (features on axis {axis})", new, None)

    def rewrite(self, step: Step, build: Build) -> None:
        node = step.node
        build.emit("Identity", [node.input[0]], "same", output=node.output[0])
