"""A 1×1 convolution on a pooled map is already per position.

On an N×C×1×1 pooled map a 1×1 convolution with stride 1 and no padding is a Linear on each
image's features; on a map of cells it is the same Linear on every cell. Nothing changes.
"""

from __future__ import annotations

from torch import fx, nn

from ..layouts import Map
from .base import Context, Decline, NoPayload, Rule, Step, module_is


class Convolution1x1(Rule[NoPayload]):
    name = "conv1x1"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        return module_is(node, ctx, nn.Conv2d) and isinstance(ctx.layout(node.args[0]), Map)

    def check(self, node: fx.Node, ctx: Context) -> Step[NoPayload] | Decline:
        conv = ctx.module(node)
        assert isinstance(conv, nn.Conv2d)
        if (
            conv.kernel_size == (1, 1)
            and conv.stride == (1, 1)
            and conv.padding in ((0, 0), "valid")
        ):
            return self.keep(node, "kept (1x1 convolution)", Map())
        return self.decline(
            node,
            f"a {conv.kernel_size} convolution of a pooled 1x1 map has no per-position equivalent",
        )
