"""Adaptive pooling that is a fixed pooling at the canonical size.

``AdaptiveAvgPool2d(out)`` on an ``in``×``in`` map averages windows of ``in/out`` pixels with
stride ``in/out`` when ``out`` divides ``in``; when ``in == out`` it is the identity. Either way it
equals a fixed pool at the canonical size, and unlike the adaptive pool that fixed pool keeps the
same meaning on larger inputs (the ONNX exporter would otherwise bake a fixed kernel in silently).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import fx, nn

from ..layouts import Trunk
from .base import (
    Context,
    Decline,
    Rule,
    Step,
    function_is,
    module_is,
    replace_with_call,
    replace_with_input,
)

ADAPTIVE_MODULES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
ADAPTIVE_FUNCTIONS = (F.adaptive_avg_pool2d, F.adaptive_max_pool2d)


def is_adaptive_pool(node: fx.Node, ctx: Context) -> bool:
    return module_is(node, ctx, *ADAPTIVE_MODULES) or function_is(node, *ADAPTIVE_FUNCTIONS)


def is_adaptive_max(node: fx.Node, ctx: Context) -> bool:
    return module_is(node, ctx, nn.AdaptiveMaxPool2d) or function_is(node, F.adaptive_max_pool2d)


@dataclass(frozen=True)
class FixedPool:
    """The fixed pool that replaces the adaptive one; ``kernel`` None: the identity."""

    kernel: tuple[int, int] | None
    maximum: bool


class FixedAdaptivePool(Rule[FixedPool]):
    name = "adaptive-pool"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        if not is_adaptive_pool(node, ctx) or not node.all_input_nodes:
            return False
        source, out = ctx.shape(node.all_input_nodes[0]), ctx.shape(node)
        if not (source and out and len(out) == 4):
            return False
        is_trunk = isinstance(ctx.layout(node.all_input_nodes[0]), Trunk)
        return is_trunk and (out[2:] != (1, 1) or source[2:] == (1, 1))

    def check(self, node: fx.Node, ctx: Context) -> Step[FixedPool] | Decline:
        source, out = ctx.shape(node.all_input_nodes[0]), ctx.shape(node)
        assert source is not None and out is not None
        (height, width), (rows, cols) = source[2:], out[2:]
        maximum = is_adaptive_max(node, ctx)
        pool = "AdaptiveMaxPool2d" if maximum else "AdaptiveAvgPool2d"
        if (height, width) == (rows, cols):
            return self.step(
                node,
                f"{pool}({rows}x{cols}) removed: identity on the {height}x{width} map at "
                "canonical size",
                Trunk("nchw"),
                FixedPool(None, maximum),
            )
        if height % rows or width % cols:
            return self.decline(
                node,
                f"{pool}({rows}x{cols}) on a {height}x{width} map is not a fixed pooling; choose "
                f"an input size whose feature map is a multiple of {rows}x{cols}",
            )
        kernel = (height // rows, width // cols)
        return self.step(
            node,
            f"{pool}({rows}x{cols}) on {height}x{width} → fixed pool, kernel and stride "
            f"{kernel[0]}x{kernel[1]}",
            Trunk("nchw"),
            FixedPool(kernel, maximum),
        )

    def rewrite(self, step: Step[FixedPool], ctx: Context) -> None:
        node = step.node
        source = node.all_input_nodes[0]
        kernel = step.payload.kernel
        if kernel is None:
            replace_with_input(node, source)
            return
        pool = F.max_pool2d if step.payload.maximum else F.avg_pool2d
        replace_with_call(node, pool, (source, kernel, kernel))
