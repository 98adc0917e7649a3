"""Moving a pooled map between channels first and channels last (as LayerNorm2d does).

``permute(0, 2, 3, 1)`` of a pooled N×C×1×1 map and its inverse keep their meaning on a map of
cells: each cell's features move to the last axis and back. Nothing changes in the graph.
"""

from __future__ import annotations

import torch
from torch import fx

from ..layouts import ChannelsLastMap, Map
from .base import Context, Decline, NoPayload, Rule, Step, function_is, method_is


class Permute(Rule[NoPayload]):
    name = "permute"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_permute = method_is(node, "permute") or function_is(node, torch.permute)
        return is_permute and isinstance(ctx.layout(node.args[0]), (Map, ChannelsLastMap))

    def check(self, node: fx.Node, ctx: Context) -> Step[NoPayload] | Decline:
        dims = node.args[1:] if method_is(node, "permute") and len(node.args) > 2 else node.args[1]
        dims = tuple(dims) if isinstance(dims, (list, tuple)) else ()
        layout = ctx.layout(node.args[0])
        if isinstance(layout, Map) and dims == (0, 2, 3, 1):
            return self.keep(node, "kept (to channels last)", ChannelsLastMap())
        if isinstance(layout, ChannelsLastMap) and dims == (0, 3, 1, 2):
            return self.keep(node, "kept (to channels first)", Map())
        return self.decline(node, f"permutes a pooled map with {dims}")
