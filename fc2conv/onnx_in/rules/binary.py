"""A value-by-value operation of the per-image vector with constants or with other vectors
(``Add`` of a bias, ``Mul`` by a scale, ``Sub``/``Div`` of a norm, a sum of branches) → the same
on the converted maps, a per-feature constant reshaped to 1×F×1×1 so that it broadcasts over
every cell. (A vector that meets a feature map of the trunk is a gate; the planner finds it.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kinds import Flat, Vec
from .base import Build, Context, Decline, OnnxRule, Step, feature_count, per_feature

BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean"}


@dataclass(frozen=True)
class BinaryPayload:
    constants: dict[str, np.ndarray]  #: the constant inputs, as 1×F×1×1 or scalars


class Binary(OnnxRule[BinaryPayload]):
    name = "binary"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type in BINARY and any(
            isinstance(ctx.kind(name), (Vec, Flat)) for name in node.input
        )

    def check(self, node: Any, ctx: Context) -> Step[BinaryPayload] | Decline:
        kinds = [ctx.kind(name) for name in node.input]
        if any(isinstance(kind, Flat) for kind in kinds):
            return self.decline(
                node, "combines the flattened feature map with another value before the first "
                "linear layer"
            )  # fmt: skip
        vectors = [
            (name, k) for name, k in zip(node.input, kinds, strict=True) if isinstance(k, Vec)
        ]
        first, vec = vectors[0]
        assert isinstance(vec, Vec)
        if any(k.axis != vec.axis for _, k in vectors):
            return self.decline(node, "combines vectors whose features lie on different axes")
        rank = max(len(ctx.shape(name) or [0, 0]) for name, _ in vectors)
        features = feature_count(ctx, first, vec.axis) or 0
        constants: dict[str, np.ndarray] = {}
        for name, kind in zip(node.input, kinds, strict=True):
            if kind is not None or not name:
                continue
            value = ctx.constant(name)
            if value is None:
                return self.decline(node, "combines the vector with a value computed at run time")
            reshaped = per_feature(value, rank, vec.axis, features)
            if reshaped is None:
                return self.decline(
                    node, f"uses a constant of shape {value.shape} that is not one value per "
                    "feature"
                )  # fmt: skip
            if value.size > 1:
                constants[name] = reshaped
        kind = Vec(rank, vec.axis)
        if not constants:
            return self.keep(node, kind, "kept (on each cell)")
        return self.step(node, "per-feature constant as 1×F×1×1", kind, BinaryPayload(constants))

    def rewrite(self, step: Step[BinaryPayload], build: Build) -> None:
        inputs = {name: build.const(v, "operand") for name, v in step.payload.constants.items()}
        build.copy(step.node, inputs)
