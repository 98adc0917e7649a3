"""Flattening and reshaping of the features that feed the classifier.

A flatten of an NCHW map to N×(C·H·W) is where a classifier leaves the spatial world. In the
converted model the map stays a map: the flatten becomes the identity and the Linear that reads
it becomes a C→out convolution with an H×W kernel (see :mod:`.linear`). Reshapes between N×F
vectors and N×F×1×1 pooled maps are likewise identities once every feature vector is a map of
vectors; a channels-last pooled map N×1×1×C reshaped to N×C becomes a permute to channels first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn

from ..layouts import ChannelsLastMap, Flat, Map, Squeezed, Trunk, Vec
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
        function_is(node, torch.flatten, torch.reshape, torch.squeeze)
        or method_is(node, "flatten", "view", "reshape", "squeeze")
        or module_is(node, ctx, nn.Flatten)
    )


@dataclass(frozen=True)
class Reshape:
    """``to_channels_first``: permute a channels-last map instead of removing the reshape."""

    to_channels_first: bool = False


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
            if layout.order != "nchw":
                return self.decline(node, "flattens a map that is not known to be NCHW")
            channels, height, width = shape[1:]
            if height * width == 1:
                return self.step(node, f"flatten of a {channels}x1x1 map removed", Vec(), Reshape())
            if ctx.mode == "cam":
                return self.decline(
                    node,
                    f"mode='cam' needs a global pooling before the classifier, but the model "
                    f"flattens a {channels}x{height}x{width} map; use mode='window'",
                )
            return self.step(
                node,
                f"flatten of a {channels}x{height}x{width} map removed (the next Linear "
                f"becomes a {height}x{width} convolution)",
                Flat(channels, height, width),
                Reshape(),
            )
        batch = shape[0]
        if isinstance(layout, Map) and out == (batch, shape[1], 1):
            return self.step(node, "squeeze of a pooled map removed", Squeezed(), Reshape())
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
                Reshape(to_channels_first=True),
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
        if not step.payload.to_channels_first:
            replace_with_input(node, source)
            return
        with ctx.gm.graph.inserting_after(node):
            permuted = ctx.gm.graph.call_method("permute", (source, 0, 3, 1, 2))
        node.replace_all_uses_with(permuted)
        ctx.gm.graph.erase_node(node)
