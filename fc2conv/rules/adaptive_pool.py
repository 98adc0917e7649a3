"""Rule 3: adaptive pooling that is fixed at the canonical size.

``AdaptiveAvgPool2d(out)`` on an ``in``×``in`` map averages windows of ``in/out`` pixels with
stride ``in/out`` when ``out`` divides ``in``; when ``in == out`` it is the identity. Either way it
equals a fixed pool at the canonical size, and unlike the adaptive pool that fixed pool keeps the
same meaning on larger inputs (the ONNX exporter would otherwise bake a fixed kernel in silently).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import fx, nn

from ..tracing import node_name
from .base import (
    Context,
    Decline,
    Rule,
    Step,
    Trunk,
    function_is,
    module_is,
    replace_with_input,
)

ADAPTIVE_MODULES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
ADAPTIVE_FUNCTIONS = (F.adaptive_avg_pool2d, F.adaptive_max_pool2d)


def is_adaptive_pool(node: fx.Node, ctx: Context) -> bool:
    return module_is(node, ctx, *ADAPTIVE_MODULES) or function_is(node, *ADAPTIVE_FUNCTIONS)


def is_max(node: fx.Node, ctx: Context) -> bool:
    return module_is(node, ctx, nn.AdaptiveMaxPool2d) or function_is(node, F.adaptive_max_pool2d)


class FixedAdaptivePool(Rule):
    name = "adaptive-pool"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        if not is_adaptive_pool(node, ctx) or not node.all_input_nodes:
            return False
        source, out = ctx.shape(node.all_input_nodes[0]), ctx.shape(node)
        if not (source and out and len(out) == 4):
            return False
        is_trunk = isinstance(ctx.layout(node.all_input_nodes[0]), Trunk)
        return is_trunk and (out[2:] != (1, 1) or source[2:] == (1, 1))

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        source, out = ctx.shape(node.all_input_nodes[0]), ctx.shape(node)
        assert source is not None and out is not None
        (height, width), (rows, cols) = source[2:], out[2:]
        kind = "AdaptiveMaxPool2d" if is_max(node, ctx) else "AdaptiveAvgPool2d"
        layer = node_name(node)
        if (height, width) == (rows, cols):
            return Step(
                self.name,
                node,
                layer,
                f"{kind}({rows}x{cols}) removed: identity on the "
                f"{height}x{width} map at canonical size",
                Trunk("nchw"),
                {"identity": True},
            )
        if height % rows or width % cols:
            return self.decline(
                node,
                layer,
                f"{kind}({rows}x{cols}) on a {height}x{width} map is not a fixed pooling; choose an "
                f"input size whose feature map is a multiple of {rows}x{cols}",
            )
        kernel = (height // rows, width // cols)
        return Step(
            self.name,
            node,
            layer,
            f"{kind}({rows}x{cols}) on {height}x{width} → fixed pool, kernel and stride "
            f"{kernel[0]}x{kernel[1]}",
            Trunk("nchw"),
            {"kernel": kernel, "max": kind},
        )

    def rewrite(self, step: Step, ctx: Context) -> None:
        node = step.node
        source = node.all_input_nodes[0]
        if step.data.get("identity"):
            replace_with_input(node, source)
            return
        pool = F.max_pool2d if is_max(node, ctx) else F.avg_pool2d
        kernel = step.data["kernel"]
        with ctx.gm.graph.inserting_after(node):
            fixed = ctx.gm.graph.call_function(pool, (source, kernel, kernel))
        node.replace_all_uses_with(fixed)
        ctx.gm.graph.erase_node(node)
