"""A Linear on the classifier path becomes a convolution.

A Linear reading a row-major flatten of a C×H×W map computes
``y[o] = sum_{c,h,w} W[o, c*H*W + h*W + w] * x[c, h, w] + b[o]``: a valid C→out convolution
with the kernel ``W.view(out, C, H, W)`` at one position. A Linear reading a feature vector
(after pooling, after another converted Linear, or the input of a plain MLP) is a 1×1
convolution applied independently at every position. The kernels are views: no copy.

When the map was flattened in another axis order (e.g. H, W, C), the same sum reads
``W.view(out, H, W, C)``; permuted to (out, C, H, W) it is the kernel for the NCHW map. That
permuted kernel is a copy of this one weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..layouts import ChannelsLastMap, Flat, Vec, on_classifier_path
from ..linear_conv import conv_from_linear
from .base import Context, Decline, Rule, Step, function_is, module_is, replace_module
from .flat_affine import Affine


@dataclass(frozen=True)
class Kernel:
    """The convolution the Linear becomes: ``channels`` inputs, a ``size`` kernel, and the
    order of (C, H, W) in which the Linear's weight columns run."""

    channels: int
    size: tuple[int, int]
    axes: tuple[int, ...] = (1, 2, 3)
    affine: tuple[Affine, ...] = ()  #: per-feature affine maps to fold in (see .flat_affine)


def _folded(
    linear: nn.Linear, affine: tuple[Affine, ...]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The Linear's weight and bias with ``x * s + t`` maps before it folded in:
    ``W (x s + t) + b = (W diag(s)) x + (W t + b)``."""
    weight, bias = linear.weight.detach(), linear.bias
    if not affine:
        return weight, bias
    scale = torch.ones(weight.shape[1], dtype=weight.dtype)
    shift = torch.zeros(weight.shape[1], dtype=weight.dtype)
    for step in affine:  # in the order they apply
        scale, shift = scale * step.scale, shift * step.scale + step.shift
    folded_bias = weight @ shift
    if bias is not None:
        folded_bias = folded_bias + bias.detach()
    return weight * scale, folded_bias


class LinearToConv(Rule[Kernel]):
    name = "linear"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_linear = module_is(node, ctx, nn.Linear) or function_is(node, F.linear)
        return is_linear and bool(ctx.classifier_inputs(node))

    def check(self, node: fx.Node, ctx: Context) -> Step[Kernel] | Decline:
        source = node.args[0]
        layout, shape = ctx.layout(source), ctx.shape(source)
        assert shape is not None
        weight_shape = (
            tuple(ctx.module(node).weight.shape)  # type: ignore[arg-type]
            if node.op == "call_module"
            else ctx.shape(node.args[1])
        )
        if weight_shape is None:
            return self.decline(node, "its weight is not a tensor fc2conv can read")
        out_features, in_features = weight_shape
        if node.op == "call_function" and any(
            on_classifier_path(ctx.layout(a)) for a in node.args[1:]
        ):
            return self.decline(node, "its weight is computed from the features")
        linear = f"Linear({in_features}→{out_features})"
        if isinstance(layout, ChannelsLastMap):
            return self.keep(
                node,
                f"{linear} on channels-last pooled map kept (already per position)",
                ChannelsLastMap(),
            )
        if isinstance(layout, Flat):
            size = (layout.height, layout.width)
            action = (
                f"{linear} → Conv2d({layout.channels}→{out_features}, kernel {size[0]}x{size[1]})"
            )
            if layout.axes != (1, 2, 3):
                action += ", weight columns reordered to NCHW (a copy)"
            if layout.affine:
                if node.op != "call_module":
                    return self.decline(
                        node,
                        "a per-feature affine map before it folds only into an nn.Linear module",
                    )
                action += ", with the per-feature affine map folded in (a copy)"
            kernel = Kernel(layout.channels, size, layout.axes, layout.affine)
            return self.step(node, action, Vec(), kernel)
        if isinstance(layout, Vec):
            return self.step(
                node,
                f"{linear} → Conv2d({in_features}→{out_features}, kernel 1x1)",
                Vec(),
                Kernel(in_features, (1, 1)),
            )
        return self.decline(
            node,
            f"applies to the last axis of a {'x'.join(map(str, shape[1:]))} tensor that is not a "
            "feature vector",
        )

    def rewrite(self, step: Step[Kernel], ctx: Context) -> None:
        node = step.node
        channels = step.payload.channels
        height, width = step.payload.size
        axes = step.payload.axes
        sizes = {1: channels, 2: height, 3: width}
        flattened = [sizes[axis] for axis in axes]  # the weight's columns, as the model flattened
        to_nchw = (0, *(1 + axes.index(axis) for axis in (1, 2, 3)))
        if node.op == "call_module":
            linear = ctx.module(node)
            assert isinstance(linear, nn.Linear)
            module = conv_from_linear(linear, channels, height, width)
            weight, bias = _folded(linear, step.payload.affine)
            if axes != (1, 2, 3) or step.payload.affine:
                permuted = weight.view(-1, *flattened).permute(*to_nchw)
                module.weight = nn.Parameter(
                    permuted.contiguous(), requires_grad=linear.weight.requires_grad
                )
                module.bias = None if bias is None else nn.Parameter(bias)
            replace_module(ctx, node, module)
            return
        graph = ctx.gm.graph
        source, weight_node = node.args[0], node.args[1]
        bias_node = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        out_features = ctx.shapes[weight_node][0]  # type: ignore[index]
        with graph.inserting_before(node):
            kernel = graph.call_method("view", (weight_node, out_features, *flattened))
            if axes != (1, 2, 3):
                kernel = graph.call_method("permute", (kernel, *to_nchw))
            conv = graph.call_function(F.conv2d, (source, kernel, bias_node))
        node.replace_all_uses_with(conv)
        graph.erase_node(node)
