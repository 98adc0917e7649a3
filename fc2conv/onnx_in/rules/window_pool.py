"""A pool over the whole feature map at the canonical size → a window pool with stride 1.

``GlobalAveragePool``, ``ReduceMean`` over rows and columns (on N×C×H×W or N×H×W×C, axes as an
attribute or an input) or a Caffe-era ``AveragePool`` whose kernel covers the map: at the
canonical size a pool with kernel = the map's size gives the same single cell, and on a larger map
it gives one cell per window. ``ReduceSum`` is the mean times rows × cols, an ``AveragePool`` that
counts its padding the mean times the covered share (with ``ceil_mode``, of the window inside the
padded map: onnxruntime does not count what runs past it). A pool whose result flows back into the trunk
(a squeeze-and-excitation gate) is found by the planner and kept global instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kinds import NCHW, Roles, Trunk, Vec
from .base import Build, Context, Decline, OnnxRule, Step, attribute, axes_of

GLOBAL_POOLS = {"GlobalAveragePool": "AveragePool", "GlobalMaxPool": "MaxPool"}
REDUCE_POOLS = {"ReduceMean": "AveragePool", "ReduceMax": "MaxPool", "ReduceSum": "AveragePool"}
WINDOW_POOLS = ("AveragePool", "MaxPool")


@dataclass(frozen=True)
class WindowPoolPayload:
    source: str  #: the pooled map
    roles: Roles  #: its axes
    pool: str  #: AveragePool or MaxPool
    rows: int
    cols: int
    scale: float  #: the factor after the pool (a sum, a mean that counts padding)


class WindowPool(OnnxRule[WindowPoolPayload]):
    name = "window pool"

    def match(self, node: Any, ctx: Context) -> bool:
        return self._pool(node, ctx) is not None

    def _pool(self, node: Any, ctx: Context) -> tuple[str, float, Vec] | None:
        """(pool, scale, output kind) where ``node`` pools its whole canonical map, else None."""
        op = node.op_type
        if op not in (*GLOBAL_POOLS, *REDUCE_POOLS, *WINDOW_POOLS) or not node.input:
            return None
        kind, shape = ctx.kind(node.input[0]), ctx.shape(node.input[0])
        if not isinstance(kind, Trunk) or kind.roles is None or shape is None:
            return None
        roles = kind.roles
        if len(roles) != 4 or sorted(map(str, roles)) != sorted(map(str, NCHW)):
            return None
        rows, cols = shape[roles.index("H")], shape[roles.index("W")]
        if op in REDUCE_POOLS:
            axes = axes_of(ctx, node)
            spatial = {roles.index("H"), roles.index("W")}
            if not axes or {axis % 4 for axis in axes} != spatial:
                return None
            keep = bool(attribute(node, "keepdims", 1))
            scale = float(rows * cols) if op == "ReduceSum" else 1.0
            axis = roles.index(None) if keep else 1
            return REDUCE_POOLS[op], scale, Vec(4 if keep else 2, axis)
        if roles != NCHW:
            return None  # ONNX's pools read axes 2 and 3 as the image's
        if op in GLOBAL_POOLS:
            return GLOBAL_POOLS[op], 1.0, Vec(4)
        kernel = attribute(node, "kernel_shape", [])
        pads = attribute(node, "pads", [0] * 4)
        out_shape = ctx.shape(node.output[0])
        if attribute(node, "auto_pad", "NOTSET") != "NOTSET" or out_shape is None:
            return None
        if out_shape[2:] != [1, 1] or kernel[0] - pads[0] < rows or kernel[1] - pads[1] < cols:
            return None
        scale = 1.0
        if op == "AveragePool" and attribute(node, "count_include_pad", 0):
            # onnxruntime divides by the window's pixels inside the padded map: with ceil_mode
            # the window may run past the padding too, and those pixels are not counted
            counted = list(kernel[:2])
            if attribute(node, "ceil_mode", 0):
                counted = [
                    min(kernel[0], rows + pads[0] + pads[2]),
                    min(kernel[1], cols + pads[1] + pads[3]),
                ]
            scale = rows * cols / (counted[0] * counted[1])
        return op, scale, Vec(4)

    def check(self, node: Any, ctx: Context) -> Step[WindowPoolPayload] | Decline:
        found = self._pool(node, ctx)
        kind = ctx.kind(node.input[0])
        assert found is not None and isinstance(kind, Trunk)
        pool, scale, vec = found
        roles = kind.roles
        assert roles is not None
        shape = ctx.shape(node.input[0]) or []
        rows, cols = shape[roles.index("H")], shape[roles.index("W")]
        payload = WindowPoolPayload(node.input[0], roles, pool, rows, cols, scale)
        action = f"{pool} {rows}x{cols}, stride 1 (one cell per window)"
        return self.step(node, action, vec, payload)

    def rewrite(self, step: Step[WindowPoolPayload], build: Build) -> None:
        p = step.payload
        output = step.node.output[0]
        mapped = build.nchw(p.source, p.roles)
        pooled = build.emit(
            p.pool,
            [mapped],
            "window_pool",
            output=None if p.scale != 1.0 else output,
            kernel_shape=[p.rows, p.cols],
        )
        if p.scale != 1.0:
            factor = build.const(np.array(p.scale, np.float32), "pool_scale")
            build.emit("Mul", [pooled, factor], "window_sum", output=output)
