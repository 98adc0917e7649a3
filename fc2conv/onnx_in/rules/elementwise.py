"""An operation on each value alone (activations, ``Clip``, ``Cast``, ``Dropout``,
``Identity``, ``PRelu``) on the per-image vector → the same on every cell of the converted map
(a per-feature ``PRelu`` slope reshaped to 1×F×1×1); on a flattened map → the same on the map
before the flatten, with which it commutes (a scalar ``PRelu`` slope only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kinds import Flat, Vec
from .base import Build, Context, Decline, OnnxRule, Step, feature_count, per_feature
from .class_axis import ENDINGS

ELEMENTWISE = {
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "Tanh",
    "Softplus", "Softsign", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Erf", "Gelu",
    "HardSwish", "Mish", "ThresholdedRelu", "Identity", "Dropout", "Clip", "Cast", "Floor",
    "Ceil", "Round", "Sign",
}  # fmt: skip
PASS_THROUGH = ("Identity", "Dropout")


@dataclass(frozen=True)
class ElementwisePayload:
    source: str  #: the tensor the copy reads: the input, or the map a flatten came from
    constants: dict[str, np.ndarray]  #: constant inputs to replace (a per-feature slope)


class Elementwise(OnnxRule[ElementwisePayload]):
    name = "elementwise"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type in ELEMENTWISE and isinstance(ctx.kind(node.input[0]), (Vec, Flat))

    def check(self, node: Any, ctx: Context) -> Step[ElementwisePayload] | Decline:
        kind = ctx.kind(node.input[0])
        if node.input[0] in ctx.endings and node.op_type in PASS_THROUGH:
            ctx.endings[node.output[0]] = ctx.endings[node.input[0]]
        if node.op_type in ENDINGS:
            ctx.endings[node.output[0]] = ENDINGS[node.op_type]
        constants: dict[str, np.ndarray] = {}
        for name in node.input[1:]:
            if not name:
                continue
            value = ctx.constant(name)
            if value is None:
                return self.decline(node, "has a parameter that is not a constant")
            if value.size > 1:
                if isinstance(kind, Flat):
                    return self.decline(
                        node, f"uses a parameter of shape {value.shape}, one value per "
                        "flattened feature; only single values commute with the flatten"
                    )  # fmt: skip
                if node.op_type != "PRelu":
                    return self.decline(
                        node, f"uses a parameter of shape {value.shape}; only PRelu's slope "
                        "may hold one value per feature"
                    )  # fmt: skip
                assert isinstance(kind, Vec)
                features = feature_count(ctx, node.input[0], kind.axis) or 0
                slope = per_feature(value, kind.rank, kind.axis, features)
                if slope is None:
                    return self.decline(
                        node, f"uses a slope of shape {value.shape} that is not one per feature"
                    )
                constants[name] = slope
        if isinstance(kind, Flat):
            if node.op_type in PASS_THROUGH:
                return self.keep(node, kind, "removed (passes the flattened map on)")
            flat = Flat(node.output[0], kind.roles, kind.dims)
            payload = ElementwisePayload(kind.source, constants)
            return self.step(node, "applied to the map before the flatten", flat, payload)
        assert isinstance(kind, Vec)
        if not constants:
            return self.keep(node, kind, "kept (on each cell)")
        payload = ElementwisePayload(node.input[0], constants)
        return self.step(node, "per-feature slope as 1×F×1×1, on each cell", kind, payload)

    def rewrite(self, step: Step[ElementwisePayload], build: Build) -> None:
        p = step.payload
        inputs = {step.node.input[0]: p.source}
        inputs.update({name: build.const(value, "slope") for name, value in p.constants.items()})
        build.copy(step.node, inputs)
