"""``LayerNormalization`` over the features of the per-image vector (a ConvNeXt head) → the same
over the channels of each cell: the converted N×F×rows×cols map is moved to N×rows×cols×F,
normalised over its last axis with the same scale and bias, and moved back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kinds import Vec
from .base import Build, Context, Decline, OnnxRule, Step, attribute


@dataclass(frozen=True)
class LayerNormPayload:
    scale: np.ndarray
    bias: np.ndarray | None


class LayerNorm(OnnxRule[LayerNormPayload]):
    name = "layer norm"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type == "LayerNormalization" and isinstance(ctx.kind(node.input[0]), Vec)

    def check(self, node: Any, ctx: Context) -> Step[LayerNormPayload] | Decline:
        vec = ctx.kind(node.input[0])
        shape = ctx.shape(node.input[0])
        assert isinstance(vec, Vec) and shape is not None
        axis = attribute(node, "axis", -1) % len(shape)
        if not 1 <= axis <= vec.axis:  # the other axes of a vector have size 1
            return self.decline(node, f"normalises from axis {axis} on, not the features alone")
        if len(node.output) > 1 and any(node.output[1:]):
            return self.decline(node, "returns its mean or deviation, which the head then uses")
        features = shape[vec.axis]
        scale = ctx.constant(node.input[1])
        bias = ctx.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scale is None or (len(node.input) > 2 and node.input[2] and bias is None):
            return self.decline(node, "has a scale or bias that is not a constant")
        if scale.size not in (1, features) or (bias is not None and bias.size not in (1, features)):
            return self.decline(node, "has a scale or bias that is not one value per feature")
        scale = np.broadcast_to(scale.reshape(-1), (features,))
        bias = None if bias is None else np.broadcast_to(bias.reshape(-1), (features,))
        payload = LayerNormPayload(scale, bias)
        return self.step(node, "over the channels of each cell", vec, payload)

    def rewrite(self, step: Step[LayerNormPayload], build: Build) -> None:
        p = step.payload
        node = step.node
        last = build.emit("Transpose", [node.input[0]], "channels_last", perm=[0, 2, 3, 1])
        inputs = [last, build.const(p.scale, "scale")]
        if p.bias is not None:
            inputs.append(build.const(p.bias, "bias"))
        epsilon = attribute(node, "epsilon", 1e-5)
        normed = build.emit("LayerNormalization", inputs, "layer_norm", axis=-1, epsilon=epsilon)
        build.emit(
            "Transpose", [normed], "channels_first", output=node.output[0], perm=[0, 3, 1, 2]
        )
