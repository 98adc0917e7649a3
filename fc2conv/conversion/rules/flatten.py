"""Flattening and reshaping of the features that feed the classifier.

A flatten of an NCHW map to N×(C·H·W) is where a classifier leaves the spatial world. In the
converted model the map stays a map: the flatten becomes the identity and the Linear that reads
it becomes a C→out convolution with an H×W kernel (see :mod:`.linear`). Reshapes between N×F
vectors and N×F×1×1 pooled maps are likewise identities once every feature vector is a map of
vectors; a channels-last pooled map N×1×1×C reshaped to N×C becomes a permute to channels first.

A map flattened in another axis order (``x.permute(0, 2, 3, 1).flatten(1)``, Caffe-era
``x.permute(0, 3, 2, 1).contiguous().view(n, -1)``) is the same map with its features numbered
differently: the flatten becomes a permute back to NCHW, and the Linear that reads it takes its
weight columns in NCHW order (see :mod:`.linear`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn

from ..layouts import NCHW, ChannelsLastMap, Flat, Map, Squeezed, Trunk, Vec, inverse
from .base import (
    Context,
    Decline,
    Rule,
    Step,
    function_is,
    method_is,
    module_is,
    replace_with_input,
)


def is_reshape(node: fx.Node, ctx: Context) -> bool:
    return (
        function_is(node, torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze)
        or method_is(node, "flatten", "view", "reshape", "squeeze", "unsqueeze")
        or module_is(node, ctx, nn.Flatten)
    )


@dataclass(frozen=True)
class Reshape:
    """What the reshape becomes: nothing (``permute`` None) or a permute of its input."""

    permute: tuple[int, ...] | None = None


class Flatten(Rule[Reshape]):
    name = "flatten"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        if not is_reshape(node, ctx) or not node.all_input_nodes:
            return False
        source = node.args[0] if node.args else None
        layout = ctx.layout(source)
        if isinstance(layout, Trunk):
            shape, out = ctx.shape(source), ctx.shape(node)
            return bool(shape and out and len(shape) == 4 and len(out) == 2 and out[0] == shape[0])
        return layout is not None and not isinstance(layout, Trunk)

    def check(self, node: fx.Node, ctx: Context) -> Step[Reshape] | Decline:
        source = node.args[0]
        assert isinstance(source, fx.Node)
        layout, shape, out = ctx.layout(source), ctx.shape(source), ctx.shape(node)
        assert shape is not None and out is not None
        if isinstance(layout, Trunk):
            order = layout.order
            if order is None or order[0] != 0:
                return self.decline(
                    node, "flattens a map whose axis order (NCHW, NHWC, …) is not known"
                )
            channels, height, width = (shape[order.index(axis)] for axis in (1, 2, 3))
            back = None if order == NCHW else inverse(order)
            if height * width == 1:
                return self.step(
                    node, f"flatten of a {channels}x1x1 map removed", Vec(), Reshape(back)
                )
            if ctx.mode == "cam":
                return self.decline(
                    node,
                    f"mode='cam' needs a global pooling before the classifier, but the model "
                    f"flattens a {channels}x{height}x{width} map; use mode='window'",
                )
            names = "".join("NCHW"[axis] for axis in order)
            action = (
                f"flatten of a {channels}x{height}x{width} map removed"
                if back is None
                else f"flatten of the {names} map → permute to NCHW"
            )
            return self.step(
                node,
                f"{action} (the next Linear becomes a {height}x{width} convolution)",
                Flat(channels, height, width, order[1:]),
                Reshape(back),
            )
        batch = shape[0]
        if isinstance(layout, (Map, Vec)) and out == (batch, shape[1], 1):
            return self.step(node, "reshape to N×F×1 removed", Squeezed(), Reshape())
        if isinstance(layout, Squeezed) and out == (batch, shape[1], 1, 1):
            return self.step(node, "reshape of vectors to 1x1 maps removed", Map(), Reshape())
        if isinstance(layout, (Map, Squeezed)) and out == (batch, shape[1]):
            return self.step(node, "reshape of a pooled map to vectors removed", Vec(), Reshape())
        if isinstance(layout, Vec) and out == shape:
            return self.step(node, "no-op reshape removed", Vec(), Reshape())
        if isinstance(layout, Vec) and out == (batch, shape[1], 1, 1):
            return self.step(node, "reshape of vectors to 1x1 maps removed", Map(), Reshape())
        if isinstance(layout, Map) and out == shape:
            return self.step(node, "no-op reshape removed", Map(), Reshape())
        if isinstance(layout, ChannelsLastMap) and out == (batch, shape[3]):
            return self.step(
                node,
                "reshape of a channels-last pooled map → permute to channels first",
                Vec(),
                Reshape((0, 3, 1, 2)),
            )
        return self.decline(
            node,
            f"reshapes the classifier's {'x'.join(map(str, shape[1:]))} features to "
            f"{'x'.join(map(str, out[1:]))}, which has no per-position equivalent",
        )

    def rewrite(self, step: Step[Reshape], ctx: Context) -> None:
        node = step.node
        source = node.args[0]
        assert isinstance(source, fx.Node)
        if step.payload.permute is None:
            replace_with_input(node, source)
            return
        with ctx.gm.graph.inserting_after(node):
            permuted = ctx.gm.graph.call_method("permute", (source, *step.payload.permute))
        node.replace_all_uses_with(permuted)
        ctx.gm.graph.erase_node(node)
