"""A value-by-value operation of the per-image vector with constants or with other vectors
(``Add`` of a bias, ``Mul`` by a scale, ``Sub``/``Div`` of a norm, a sum of branches) → the same
on the converted maps, a per-feature constant reshaped to 1×F×1×1 so that it broadcasts over
every cell. On a flattened map with single values (``2 * f``) → the same on the map before the
flatten, with which it commutes. (A vector that meets a feature map of the trunk is a gate; the
planner finds it.)"""

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
    sources: dict[str, str] | None = None  #: a flattened input: the map it was flattened from


class Binary(OnnxRule[BinaryPayload]):
    name = "binary"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type in BINARY and any(
            isinstance(ctx.kind(name), (Vec, Flat)) for name in node.input
        )

    def check(self, node: Any, ctx: Context) -> Step[BinaryPayload] | Decline:
        kinds = [ctx.kind(name) for name in node.input]
        if any(isinstance(kind, Flat) for kind in kinds):
            return self._on_flat(node, ctx, kinds)
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

    def _on_flat(self, node: Any, ctx: Context, kinds: list[Any]) -> Step[BinaryPayload] | Decline:
        """A flattened map with single values: the same on the map before the flatten."""
        flats = [
            (name, k) for name, k in zip(node.input, kinds, strict=True) if isinstance(k, Flat)
        ]
        others = [name for name, k in zip(node.input, kinds, strict=True) if k is None and name]
        values = [ctx.constant(name) for name in others]
        if len(flats) > 1 or len(others) + 1 != len(node.input):
            return self.decline(
                node, "combines the flattened feature map with another value before the first "
                "linear layer"
            )  # fmt: skip
        if any(value is None or value.size != 1 or value.ndim > 2 for value in values):
            return self.decline(
                node, "combines the flattened feature map with a constant of more than one "
                "value; only single values commute with the flatten"
            )  # fmt: skip
        name, flat = flats[0]
        payload = BinaryPayload({}, {name: flat.source})
        kind = Flat(node.output[0], flat.roles, flat.dims)
        return self.step(node, "applied to the map before the flatten", kind, payload)

    def rewrite(self, step: Step[BinaryPayload], build: Build) -> None:
        inputs = {name: build.const(v, "operand") for name, v in step.payload.constants.items()}
        build.copy(step.node, {**inputs, **(step.payload.sources or {})})
