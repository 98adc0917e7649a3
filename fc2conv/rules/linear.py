"""Rules 1, 2 and 6: a Linear on the classifier path becomes a convolution.

Rule 1: a Linear reading a row-major flatten of a C×H×W map is a C→out convolution with an H×W
kernel, ``W.view(out, C, H, W)`` (see :mod:`fc2conv.weights`). Rule 2 and 6: a Linear reading a
feature vector (after pooling, after another converted Linear, or the input of a plain MLP) is a
1×1 convolution, applied independently at every position. Weights are views: no copy.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import fx, nn

from ..tracing import node_name
from ..weights import conv_from_linear
from .base import (
    Context,
    Decline,
    Flat,
    MapCL,
    Rule,
    Step,
    Vec,
    function_is,
    is_head,
    module_is,
    replace_module,
)


class LinearToConv(Rule):
    name = "linear"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_linear = module_is(node, ctx, nn.Linear) or function_is(node, F.linear)
        return is_linear and bool(ctx.head_inputs(node))

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        layer = node_name(node)
        source = node.args[0]
        layout, shape = ctx.layout(source), ctx.shape(source)
        assert shape is not None
        weight_shape = (
            tuple(ctx.module(node).weight.shape)  # type: ignore[arg-type]
            if node.op == "call_module"
            else ctx.shape(node.args[1])
        )
        if weight_shape is None:
            return self.decline(node, layer, "its weight is not a tensor fc2conv can read")
        out_features, in_features = weight_shape
        if node.op == "call_function" and any(is_head(ctx.layout(a)) for a in node.args[1:]):
            return self.decline(node, layer, "its weight is computed from the features")
        linear = f"Linear({in_features}→{out_features})"
        if isinstance(layout, MapCL):
            return Step(
                self.name,
                node,
                layer,
                f"{linear} on channels-last pooled map kept (already per position)",
                MapCL(),
                changes_graph=False,
            )
        if isinstance(layout, Flat):
            kernel = (layout.height, layout.width)
            return Step(
                self.name,
                node,
                layer,
                f"{linear} → Conv2d({layout.channels}→{out_features}, kernel "
                f"{kernel[0]}x{kernel[1]})",
                Vec(),
                {"channels": layout.channels, "kernel": kernel},
            )
        if isinstance(layout, Vec):
            return Step(
                self.name,
                node,
                layer,
                f"{linear} → Conv2d({in_features}→{out_features}, kernel 1x1)",
                Vec(),
                {"channels": in_features, "kernel": (1, 1)},
            )
        return self.decline(
            node,
            layer,
            f"applies to the last axis of a {'x'.join(map(str, shape[1:]))} tensor that is not a "
            "feature vector",
        )

    def rewrite(self, step: Step, ctx: Context) -> None:
        node = step.node
        channels = step.data["channels"]
        height, width = step.data["kernel"]
        if node.op == "call_module":
            linear = ctx.module(node)
            assert isinstance(linear, nn.Linear)
            replace_module(ctx, node, conv_from_linear(linear, channels, height, width))
            return
        graph = ctx.gm.graph
        source, weight = node.args[0], node.args[1]
        bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        out_features = ctx.shapes[weight][0]  # type: ignore[index]
        with graph.inserting_before(node):
            kernel = graph.call_method("view", (weight, out_features, channels, height, width))
            conv = graph.call_function(F.conv2d, (source, kernel, bias))
        node.replace_all_uses_with(conv)
        graph.erase_node(node)
