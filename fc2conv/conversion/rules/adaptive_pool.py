"""Adaptive pooling that is a fixed pooling at the canonical size.

``AdaptiveAvgPool2d(out)`` on a map of ``n`` pixels pools, for output ``i``, the window
``[floor(i·n/out), ceil((i+1)·n/out))``. When every window has the same size ``k`` and the windows
start every ``s`` pixels (always when ``out`` divides ``n``: ``k = s = n/out``; also e.g. 5 → 2:
``k = 3, s = 2``), that is a fixed pool with kernel ``k`` and stride ``s``; when ``n == out`` it is
the identity. The fixed pool equals the adaptive one at the canonical size and, unlike it, keeps
its meaning on larger inputs (the ONNX exporter would otherwise bake a fixed kernel in silently).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch.nn.functional as F
from torch import fx, nn

from ..layouts import NCHW, Trunk
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


def uniform_windows(size: int, out: int) -> tuple[int, int] | None:
    """(kernel, stride) of the fixed pool that equals adaptive pooling of ``size`` pixels to
    ``out``, or None when its windows differ in size or spacing."""
    starts = [i * size // out for i in range(out)]
    ends = [-(-(i + 1) * size // out) for i in range(out)]
    kernels = {end - start for start, end in zip(starts, ends, strict=True)}
    strides = {b - a for a, b in itertools.pairwise(starts)} or {1}
    if len(kernels) != 1 or len(strides) != 1 or 0 in strides:
        return None
    return kernels.pop(), strides.pop()


@dataclass(frozen=True)
class FixedPool:
    """The fixed pool that replaces the adaptive one; ``kernel`` None: the identity."""

    kernel: tuple[int, int] | None
    stride: tuple[int, int] | None
    maximum: bool


class FixedAdaptivePool(Rule[FixedPool]):
    name = "adaptive-pool"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        if not is_adaptive_pool(node, ctx) or not node.all_input_nodes:
            return False
        source, out = ctx.shape(node.all_input_nodes[0]), ctx.shape(node)
        if not (source and out and len(out) == 4):
            return False
        layout = ctx.layout(node.all_input_nodes[0])
        is_nchw = isinstance(layout, Trunk) and layout.order == NCHW
        return is_nchw and (out[2:] != (1, 1) or source[2:] == (1, 1))

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
                Trunk(NCHW),
                FixedPool(None, None, maximum),
            )
        if rows > height or cols > width:
            return self.decline(
                node,
                f"{pool}({rows}x{cols}) enlarges a {height}x{width} map, which no fixed pooling "
                f"does; choose an input size whose feature map is at least {rows}x{cols}",
            )
        vertical, horizontal = uniform_windows(height, rows), uniform_windows(width, cols)
        if vertical is None or horizontal is None:
            return self.decline(
                node,
                f"{pool}({rows}x{cols}) on a {height}x{width} map pools windows of different "
                f"sizes, which no fixed pooling does; choose an input size whose feature map is "
                f"a multiple of {rows}x{cols}",
            )
        kernel, stride = (vertical[0], horizontal[0]), (vertical[1], horizontal[1])
        return self.step(
            node,
            f"{pool}({rows}x{cols}) on {height}x{width} → fixed pool, kernel "
            f"{kernel[0]}x{kernel[1]}, stride {stride[0]}x{stride[1]}",
            Trunk(NCHW),
            FixedPool(kernel, stride, maximum),
        )

    def rewrite(self, step: Step[FixedPool], ctx: Context) -> None:
        node = step.node
        source = node.all_input_nodes[0]
        kernel, stride = step.payload.kernel, step.payload.stride
        if kernel is None:
            replace_with_input(node, source)
            return
        pool = F.max_pool2d if step.payload.maximum else F.avg_pool2d
        replace_with_call(node, pool, (source, kernel, stride))
