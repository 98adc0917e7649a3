"""LayerNorm over the feature axis: it runs on channels-last maps.

``LayerNorm(F)`` normalises the last axis of N×F. On a map N×F×rows×cols the features sit on
axis 1, so the converted model permutes to channels last, normalises, and permutes back: the same
normalisation of each cell's feature vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import fx, nn

from ..layouts import ChannelsLastMap, Vec
from .base import Context, Decline, Rule, Step, argument, function_is, module_is
from .elementwise import CAM_HINT


@dataclass(frozen=True)
class ChannelsLast:
    pass


class LayerNorm(Rule[ChannelsLast]):
    name = "layer-norm"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_norm = module_is(node, ctx, nn.LayerNorm) or function_is(node, F.layer_norm)
        return is_norm and bool(ctx.classifier_inputs(node))

    def check(self, node: fx.Node, ctx: Context) -> Step[ChannelsLast] | Decline:
        if ctx.mode == "cam":
            return self.decline(node, f"LayerNorm is not affine; {CAM_HINT}")
        layout = ctx.layout(node.args[0])
        normalized = (
            tuple(ctx.module(node).normalized_shape)  # type: ignore[arg-type]
            if node.op == "call_module"
            else tuple(argument(node, 1, "normalized_shape"))
        )
        if len(normalized) != 1:
            return self.decline(node, "normalises over more than the feature axis")
        if isinstance(layout, ChannelsLastMap):
            return self.keep(node, "kept (channels last)", ChannelsLastMap())
        if isinstance(layout, Vec):
            return self.step(
                node,
                "LayerNorm over features → applied channels-last at every position",
                Vec(),
                ChannelsLast(),
            )
        return self.decline(node, "normalises an axis that is not the feature axis")

    def rewrite(self, step: Step[ChannelsLast], ctx: Context) -> None:
        node, graph = step.node, ctx.gm.graph
        source = node.args[0]
        with graph.inserting_before(node):
            last = graph.call_method("permute", (source, 0, 2, 3, 1))
        node.args = (last, *node.args[1:])
        with graph.inserting_after(node):
            first = graph.call_method("permute", (node, 0, 3, 1, 2))
        node.replace_all_uses_with(first, delete_user_cb=lambda user: user is not first)
