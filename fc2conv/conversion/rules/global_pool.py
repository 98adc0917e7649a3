"""Global pooling in front of the classifier.

``mode="window"``: a global pool over the H×W map of the canonical input is a pool with kernel
H×W and stride 1 evaluated at one position; on a larger map that pool yields one cell per
canonical-size window, and the layers after it (turned into 1×1 convolutions) run on every cell.

``mode="cam"``: for an affine classifier ``A``, ``A(mean_p f_p) = mean_p A(f_p)``, so ``A`` can
run at every feature position first and the pool can go: the result is a class-activation map
whose spatial mean equals the logits at any input size. Max does not commute with ``A``, so
global max pooling only supports ``mode="window"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..layouts import Map, Trunk, Vec
from .adaptive_pool import is_adaptive_max, is_adaptive_pool
from .base import (
    Context,
    Decline,
    Rule,
    Step,
    argument,
    function_is,
    method_is,
    module_is,
    normalise_dims,
    replace_with_call,
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


@dataclass(frozen=True)
class WindowPool:
    """What the global pool becomes: ``kernel`` None removes it (cam mode, or a 1×1 map)."""

    pool_type: str  # "avg" or "max"
    kernel: tuple[int, int] | None


class GlobalPool(Rule[WindowPool]):
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

    def _pool_type(self, node: fx.Node, ctx: Context) -> str:
        if is_adaptive_pool(node, ctx):
            return "max" if is_adaptive_max(node, ctx) else "avg"
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

    def check(self, node: fx.Node, ctx: Context) -> Step[WindowPool] | Decline:
        source_node = node.all_input_nodes[0]
        source, out = ctx.shape(source_node), ctx.shape(node)
        assert source is not None and out is not None
        height, width = source[2:]
        trunk = ctx.layout(source_node)
        pool_type = self._pool_type(node, ctx)
        layout = Vec() if len(out) == 2 else Map()
        if isinstance(trunk, Map) or (height, width) == (1, 1):
            return self.step(
                node, "global pooling of a 1x1 map removed", layout, WindowPool(pool_type, None)
            )
        assert isinstance(trunk, Trunk)
        if trunk.order != "nchw":
            return self.decline(node, "pools a tensor that is not known to be NCHW")
        if len(out) not in (2, 4):
            return self.decline(node, f"global pooling gives a {len(out)}-D tensor")
        what = f"global {pool_type} pool over {height}x{width}"
        if ctx.mode == "cam":
            if pool_type == "max":
                return self.decline(
                    node,
                    "mode='cam' needs global average pooling, and max pooling does not commute "
                    "with the classifier; use mode='window'",
                )
            return self.step(
                node,
                f"{what} removed: the classifier runs at every feature position "
                "(class-activation map)",
                layout,
                WindowPool(pool_type, None),
            )
        return self.step(
            node,
            f"{what} → {pool_type.capitalize()}Pool2d(kernel {height}x{width}, stride 1)",
            layout,
            WindowPool(pool_type, (height, width)),
        )

    def rewrite(self, step: Step[WindowPool], ctx: Context) -> None:
        node = step.node
        source = node.all_input_nodes[0]
        kernel = step.payload.kernel
        if kernel is None:
            replace_with_input(node, source)
            return
        pool = F.max_pool2d if step.payload.pool_type == "max" else F.avg_pool2d
        replace_with_call(node, pool, (source, kernel, 1))
