"""Rule 4: global pooling in front of the classifier head.

``head="window"``: a global pool over the H×W map of the canonical input is a pool with kernel H×W
and stride 1 evaluated at one position; on a larger map that pool yields one cell per canonical-size
window, and the head (turned into 1×1 convolutions) runs on every cell.

``head="cam"``: for an affine head ``A``, ``A(mean_p f_p) = mean_p A(f_p)``, so the head can run at
every feature position first and the pool can go: the result is a class-activation map whose
spatial mean equals the logits at any input size. Max does not commute with ``A``, so global max
pooling only supports ``head="window"``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..tracing import node_name
from .adaptive_pool import is_adaptive_pool, is_max
from .base import (
    Context,
    Decline,
    Map,
    Rule,
    Step,
    Trunk,
    Vec,
    argument,
    function_is,
    method_is,
    module_is,
    normalise_dims,
    replace_with_input,
)

FIXED_POOL_MODULES = (nn.AvgPool2d, nn.MaxPool2d)
FIXED_POOL_FUNCTIONS = (F.avg_pool2d, F.max_pool2d)


def _reduction(node: fx.Node) -> str | None:
    """'avg' or 'max' for mean/amax reductions, else None."""
    if method_is(node, "mean") or function_is(node, torch.mean):
        return "avg"
    if method_is(node, "amax") or function_is(node, torch.amax):
        return "max"
    return None


class GlobalPool(Rule):
    name = "global-pool"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        inputs = node.all_input_nodes
        if not inputs or not isinstance(ctx.layout(inputs[0]), (Trunk, Map)):
            return False
        source, out = ctx.shape(inputs[0]), ctx.shape(node)
        if not source or not out or len(source) != 4:
            return False
        if is_adaptive_pool(node, ctx):
            return out[2:] == (1, 1)
        if module_is(node, ctx, *FIXED_POOL_MODULES) or function_is(node, *FIXED_POOL_FUNCTIONS):
            # a fixed pool is global only if its kernel covers the map; else it is trunk
            return len(out) == 4 and out[2:] == (1, 1) and not self._why_not_global(node, ctx)
        if _reduction(node):
            dims = normalise_dims(argument(node, 1, "dim"), 4)
            return dims == (2, 3)
        return False

    def _kind(self, node: fx.Node, ctx: Context) -> str:
        if is_adaptive_pool(node, ctx):
            return "max" if is_max(node, ctx) else "avg"
        if module_is(node, ctx, nn.MaxPool2d) or function_is(node, F.max_pool2d):
            return "max"
        if module_is(node, ctx, nn.AvgPool2d) or function_is(node, F.avg_pool2d):
            return "avg"
        return _reduction(node) or "avg"

    def _why_not_global(self, node: fx.Node, ctx: Context) -> str | None:
        """Why a fixed pool with a 1x1 output is not a plain global pool, or None."""
        kernel: Any
        padding: Any
        if node.op == "call_module":
            pool = ctx.module(node)
            kernel, padding = pool.kernel_size, pool.padding
        else:
            kernel, padding = argument(node, 1, "kernel_size"), argument(node, 3, "padding", 0)
        if padding not in (0, (0, 0)):
            return "pads its input"
        if isinstance(kernel, int):
            kernel = (kernel, kernel)
        source = ctx.shape(node.all_input_nodes[0])
        assert source is not None
        if (
            isinstance(kernel, tuple)
            and all(isinstance(k, int) for k in kernel)
            and (kernel[0] < source[2] or kernel[1] < source[3])
        ):
            return (
                f"its {kernel[0]}x{kernel[1]} kernel does not cover the {source[2]}x{source[3]} map"
            )
        return None

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        layer = node_name(node)
        source_node = node.all_input_nodes[0]
        source, out = ctx.shape(source_node), ctx.shape(node)
        assert source is not None and out is not None
        height, width = source[2:]
        trunk = ctx.layout(source_node)
        if isinstance(trunk, Map) or (height, width) == (1, 1):
            return Step(
                self.name,
                node,
                layer,
                "global pooling of a 1x1 map removed",
                Vec() if len(out) == 2 else Map(),
                {"identity": True},
            )
        assert isinstance(trunk, Trunk)
        if trunk.order != "nchw":
            return self.decline(node, layer, "pools a tensor that is not known to be NCHW")
        kind = self._kind(node, ctx)
        layout = Vec() if len(out) == 2 else Map()
        if len(out) not in (2, 4):
            return self.decline(node, layer, f"global pooling gives a {len(out)}-D tensor")
        what = f"global {kind} pool over {height}x{width}"
        if ctx.head == "cam":
            if kind == "max":
                return self.decline(
                    node,
                    layer,
                    "head='cam' needs global average pooling, and max pooling does not commute "
                    "with the head; use head='window'",
                )
            return Step(
                self.name,
                node,
                layer,
                f"{what} removed: the head runs at every feature position (class-activation map)",
                layout,
                {"kind": kind},
            )
        return Step(
            self.name,
            node,
            layer,
            f"{what} → {kind.capitalize()}Pool2d(kernel {height}x{width}, stride 1)",
            layout,
            {"kind": kind, "kernel": (height, width)},
        )

    def rewrite(self, step: Step, ctx: Context) -> None:
        node = step.node
        source = node.all_input_nodes[0]
        if ctx.head == "cam" or step.data.get("identity"):
            replace_with_input(node, source)
            return
        pool = F.max_pool2d if step.data["kind"] == "max" else F.avg_pool2d
        with ctx.gm.graph.inserting_after(node):
            window = ctx.gm.graph.call_function(pool, (source, step.data["kernel"], 1))
        node.replace_all_uses_with(window)
        ctx.gm.graph.erase_node(node)
