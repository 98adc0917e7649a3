"""``Gemm`` (any transB, alpha, beta) or ``MatMul`` by a constant on a flattened map or a
per-image vector → a convolution with the same weights.

On a map of C×H×W flattened in the order of its axes' ``roles``, output ``o`` is
``Σ W[o, f] · x[f]`` over the flattened index ``f``: the weight row read in that order
(``W.reshape(o, C, H, W)`` for N×C×H×W, ``W.reshape(o, H, W, C)`` transposed to o×C×H×W for a
channels-last flatten) is a kernel that covers the map, and sliding it gives one output per
window. On a vector (held as an N×F×rows×cols map) the layer is a 1×1 convolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kinds import NCHW, Flat, Vec, roles_text
from .base import Build, Context, Decline, OnnxRule, Step, attribute


@dataclass(frozen=True)
class LinearPayload:
    kernel: np.ndarray  #: outputs × C × rows × cols
    bias: np.ndarray | None
    flat: Flat | None  #: the flattened map it reads, or None for a vector


class Linear(OnnxRule[LinearPayload]):
    name = "linear"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type in ("Gemm", "MatMul") and isinstance(
            ctx.kind(node.input[0]), (Flat, Vec)
        )

    def _matrix(self, node: Any, ctx: Context) -> tuple[np.ndarray, np.ndarray | None] | str:
        """outputs × inputs weights and a bias, or the reason there are none."""
        weight = ctx.constant(node.input[1])
        if weight is None:
            return "multiplies by a weight that is not a constant"
        if node.op_type == "MatMul":
            if weight.ndim != 2:
                return f"multiplies by a {weight.ndim}-D constant"
            return weight.T, None
        if attribute(node, "transA", 0):
            return "multiplies the transposed vector (transA=1)"
        matrix = weight if attribute(node, "transB", 0) else weight.T
        matrix = matrix * np.asarray(attribute(node, "alpha", 1.0), weight.dtype)
        if len(node.input) < 3 or not node.input[2]:
            return matrix, None
        bias = ctx.constant(node.input[2])
        if bias is None:
            return "adds a bias that is not a constant"
        beta = np.asarray(attribute(node, "beta", 1.0), bias.dtype)
        return matrix, np.broadcast_to(bias * beta, (1, matrix.shape[0])).reshape(-1)

    def check(self, node: Any, ctx: Context) -> Step[LinearPayload] | Decline:
        if ctx.kind(node.input[1]) is not None:
            return self.decline(node, "multiplies two values of the classifier path")
        found = self._matrix(node, ctx)
        if isinstance(found, str):
            return self.decline(node, found)
        matrix, bias = found
        outputs = matrix.shape[0]
        kind = ctx.kind(node.input[0])
        if isinstance(kind, Vec):
            rank = kind.rank
            if kind.axis != rank - 1:
                return self.decline(
                    node, f"multiplies the per-image vector along axis {rank - 1}, which holds "
                    f"no features (they are on axis {kind.axis})"
                )  # fmt: skip
            kernel = matrix.reshape(outputs, matrix.shape[1], 1, 1)
            action = f"Conv 1x1, {matrix.shape[1]}→{outputs}"
            payload = LinearPayload(kernel, bias, None)
            return self.step(node, action, Vec(rank, kind.axis), payload)
        assert isinstance(kind, Flat)
        dims = kind.dims[1:]
        if int(np.prod(dims)) != matrix.shape[1]:
            return self.decline(node, "has a weight that does not match the flattened map")
        order = [1 + kind.roles[1:].index(role) for role in NCHW[1:]]
        kernel = matrix.reshape(outputs, *dims).transpose(0, *order)
        rows, cols = kernel.shape[2:]
        action = f"Conv {rows}x{cols}, {kernel.shape[1]}→{outputs}"
        if kind.roles != NCHW:
            action += f" (weights read in the {roles_text(kind.roles)} order of the flatten)"
        return self.step(node, action, Vec(2), LinearPayload(kernel, bias, kind))

    def rewrite(self, step: Step[LinearPayload], build: Build) -> None:
        p = step.payload
        source = step.node.input[0] if p.flat is None else build.nchw(p.flat.source, p.flat.roles)
        inputs = [source, build.const(p.kernel, "weight")]
        if p.bias is not None:
            inputs.append(build.const(p.bias, "bias"))
        kernel_shape = list(p.kernel.shape[2:])
        build.emit("Conv", inputs, "conv", output=step.node.output[0], kernel_shape=kernel_shape)
