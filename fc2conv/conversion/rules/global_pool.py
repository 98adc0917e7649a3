"""Global pooling in front of the classifier, in any spelling.

``mode="window"``: a global pool over the H×W map of the canonical input is a pool with kernel
H×W and stride 1 evaluated at one position; on a larger map that pool yields one cell per
canonical-size window, and the layers after it (turned into 1×1 convolutions) run on every cell.
A reduction over one spatial axis and then the other (``x.mean(3).mean(2)``) is two such pools,
1×W then H×1; a sum is the mean times H·W. A channels-last map (``x.mean((1, 2))`` on NHWC) is
pooled as the NCHW map it holds.

``mode="cam"``: for an affine classifier ``A``, ``A(mean_p f_p) = mean_p A(f_p)``, so ``A`` can
run at every feature position first and the pool can go: the result is a class-activation map
whose spatial mean equals the logits at any input size. Max and sum do not commute with ``A``
that way, so they only support ``mode="window"``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..layouts import (
    NCHW,
    ChannelsLastMap,
    Layout,
    Map,
    PartlyPooled,
    Squeezed,
    Trunk,
    Vec,
    inverse,
)
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
    replace_with_input,
)

FIXED_POOL_MODULES = (nn.AvgPool2d, nn.MaxPool2d)
FIXED_POOL_FUNCTIONS = (F.avg_pool2d, F.max_pool2d)
CHANNELS_LAST = (0, 2, 3, 1)


def _reduction(node: fx.Node) -> str | None:
    """'avg', 'max' or 'sum' for mean/amax/sum reductions, else None."""
    if method_is(node, "mean") or function_is(node, torch.mean):
        return "avg"
    if method_is(node, "amax") or function_is(node, torch.amax):
        return "max"
    if method_is(node, "sum") or function_is(node, torch.sum):
        return "sum"
    return None


@dataclass(frozen=True)
class WindowPool:
    """What the pooling becomes: permute to NCHW (``to_nchw``), pool with ``kernel`` and stride
    1 (None: no pool, as in cam mode or on a 1×1 map), then permute by ``back``."""

    pool_type: str  # "avg", "max" or "sum"
    kernel: tuple[int, int] | None
    to_nchw: tuple[int, ...] | None = None
    back: tuple[int, ...] | None = None


class GlobalPool(Rule[WindowPool]):
    name = "global-pool"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        inputs = node.all_input_nodes
        if not inputs:
            return False
        layout, source, out = ctx.layout(inputs[0]), ctx.shape(inputs[0]), ctx.shape(node)
        if not source or not out:
            return False
        if _reduction(node):
            dims = normalise_dims(argument(node, 1, "dim"), len(source))
            if isinstance(layout, PartlyPooled):
                return dims is not None
            if isinstance(layout, Map):  # over the 1x1 axes; over the features: feature-axis
                return dims is not None and set(dims) <= {2, 3}
            if isinstance(layout, Squeezed):  # N×F×1 over its 1-sized axis
                return dims == (2,)
            if not (isinstance(layout, Trunk) and len(source) == 4 and dims is not None):
                return False
            # over the channels only (an RMS or response norm): per position, part of the trunk
            return layout.order is None or bool({layout.order[d] for d in dims} & {2, 3})
        if not isinstance(layout, (Trunk, Map)) or len(source) != 4:
            return False
        if isinstance(layout, Trunk) and layout.order != NCHW:
            return False  # a pool module acts on the last two axes, here not H and W
        if is_adaptive_pool(node, ctx):
            return out[2:] == (1, 1)
        if module_is(node, ctx, *FIXED_POOL_MODULES) or function_is(node, *FIXED_POOL_FUNCTIONS):
            # a fixed pool is global only if its kernel covers the map; else it is trunk
            return len(out) == 4 and out[2:] == (1, 1) and not self._why_not_global(node, ctx)
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
        layout = ctx.layout(source_node)
        pool_type = self._pool_type(node, ctx)
        if isinstance(layout, PartlyPooled):
            return self._finish_partial(node, ctx, layout, source, out, pool_type)
        if isinstance(layout, Squeezed):
            kept: Layout = Squeezed() if len(out) == 3 else Vec()
            return self.step(
                node, "reduction over a 1-sized axis removed", kept, WindowPool(pool_type, None)
            )
        one_by_one_trunk = (
            isinstance(layout, Trunk) and layout.order == NCHW and source[2:] == (1, 1)
        )
        if isinstance(layout, Map) or one_by_one_trunk:
            if len(out) not in (2, 4):
                return self.decline(node, f"pooling gives a {len(out)}-D tensor")
            one_by_one = Vec() if len(out) == 2 else Map()
            return self.step(
                node, "pooling of a 1x1 map removed", one_by_one, WindowPool(pool_type, None)
            )
        assert isinstance(layout, Trunk)
        order = layout.order
        if order is None:
            return self.decline(node, "pools a map whose axis order (NCHW, NHWC, …) is not known")
        if _reduction(node):
            dims = normalise_dims(argument(node, 1, "dim"), 4)
            assert dims is not None
            pooled = {order[d] for d in dims}
            if pooled in ({2}, {3}) and order == NCHW:
                return self._start_partial(node, ctx, pooled.pop(), source, out, pool_type)
            if pooled != {2, 3}:
                return self.decline(
                    node,
                    f"reduces axes {dims} of the map, which are not its height and width",
                )
        height, width = source[order.index(2)], source[order.index(3)]
        channels = source[order.index(1)]
        result = self._pooled_layout(order, out)
        if result is None:
            return self.decline(
                node,
                f"pooling gives a {'x'.join(map(str, out[1:]))} tensor that is not one feature "
                "vector per image",
            )
        layout_out, back = result
        to_nchw = None if order == NCHW else inverse(order)
        what = f"global {pool_type} pool over {height}x{width}"
        if order != NCHW:
            what += " of a channels-last map" if order == CHANNELS_LAST else " of a permuted map"
        if ctx.mode == "cam":
            if pool_type != "avg":
                return self.decline(
                    node,
                    f"mode='cam' needs global average pooling, and {pool_type} pooling does not "
                    "commute with the classifier; use mode='window'",
                )
            return self.step(
                node,
                f"{what} removed: the classifier runs at every feature position "
                "(class-activation map)",
                layout_out,
                WindowPool(pool_type, None, to_nchw, back),
            )
        name = {"avg": "AvgPool2d", "max": "MaxPool2d", "sum": "sum pool"}[pool_type]
        return self.step(
            node,
            f"{what} ({channels} channels) → {name}(kernel {height}x{width}, stride 1)",
            layout_out,
            WindowPool(pool_type, (height, width), to_nchw, back),
        )

    @staticmethod
    def _pooled_layout(
        order: tuple[int, ...], out: tuple[int, ...]
    ) -> tuple[Layout, tuple[int, ...] | None] | None:
        """The layout of a global pool's result, and the permutation that brings the converted
        NCHW map into the result's axis order; None when the result is not a feature vector."""
        if len(out) == 2:
            kept = [axis for axis in order if axis in (0, 1)]
            return (Vec(), None) if kept == [0, 1] else None
        if len(out) == 4 and order == NCHW:
            return Map(), None
        if len(out) == 4 and order == CHANNELS_LAST:
            return ChannelsLastMap(), CHANNELS_LAST
        return None

    def _start_partial(
        self,
        node: fx.Node,
        ctx: Context,
        pooled: int,
        source: tuple[int, ...],
        out: tuple[int, ...],
        pool_type: str,
    ) -> Step[WindowPool] | Decline:
        if ctx.mode == "cam":
            return self.decline(
                node,
                "mode='cam' needs one global average pooling; this pools one axis at a time; "
                "use mode='window'",
            )
        remaining = 5 - pooled  # the other spatial axis: 2 ↔ 3
        kernel = (source[2], 1) if pooled == 2 else (1, source[3])
        axis = "height" if pooled == 2 else "width"
        return self.step(
            node,
            f"{pool_type} over the map's {axis} ({source[pooled]}) → pool with kernel "
            f"{kernel[0]}x{kernel[1]}, stride 1",
            PartlyPooled(remaining, len(out)),
            WindowPool(pool_type, kernel),
        )

    def _finish_partial(
        self,
        node: fx.Node,
        ctx: Context,
        layout: PartlyPooled,
        source: tuple[int, ...],
        out: tuple[int, ...],
        pool_type: str,
    ) -> Step[WindowPool] | Decline:
        dims = normalise_dims(argument(node, 1, "dim"), len(source))
        assert dims is not None
        axis = layout.remaining if layout.rank == 4 else 2
        allowed = {axis} | ({2, 3} if layout.rank == 4 else set())
        if axis not in dims or not set(dims) <= allowed:
            return self.decline(node, f"reduces axes {dims}, not the map's remaining spatial axis")
        size = source[axis]
        kernel = (size, 1) if layout.remaining == 2 else (1, size)
        result: Layout = Vec() if len(out) == 2 else Squeezed() if len(out) == 3 else Map()
        return self.step(
            node,
            f"{pool_type} over the map's other spatial axis ({size}) → pool with kernel "
            f"{kernel[0]}x{kernel[1]}, stride 1",
            result,
            WindowPool(pool_type, kernel),
        )

    def rewrite(self, step: Step[WindowPool], ctx: Context) -> None:
        node = step.node
        source = node.all_input_nodes[0]
        plan = step.payload
        if plan.kernel is None and plan.to_nchw is None:
            replace_with_input(node, source)
            return
        graph = ctx.gm.graph
        with graph.inserting_before(node.next):  # in order, after the pooling's node
            value = source
            if plan.to_nchw is not None:
                value = graph.call_method("permute", (value, *plan.to_nchw))
            if plan.kernel is not None:
                pool = F.max_pool2d if plan.pool_type == "max" else F.avg_pool2d
                value = graph.call_function(pool, (value, plan.kernel, 1))
                if plan.pool_type == "sum":
                    area = plan.kernel[0] * plan.kernel[1]
                    value = graph.call_function(operator.mul, (value, area))
            if plan.back is not None:
                value = graph.call_method("permute", (value, *plan.back))
        node.replace_all_uses_with(value)
        graph.erase_node(node)
