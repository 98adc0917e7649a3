"""What each output of a converted model holds: its name, how many channels, whether it is a
class map, and what the classifier ends in there (softmax, log-softmax, sigmoid or raw scores).

Heatmaps and detection read this from the model (or the exported file's metadata), so that a
model that already ends in a softmax does not get a second one, a multi-label (sigmoid) model
gives per-class probabilities, and a model with several outputs (face probabilities and box
offsets) is read from the output that holds class scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from .layouts import Map, Vec
from .rules.base import Context, function_is, method_is, module_is
from .tracing import output_leaves, output_names

__all__ = ["ENDINGS", "OutputInfo", "describe_outputs"]

#: what a classifier's output can end in
ENDINGS = ("softmax", "log-softmax", "sigmoid", "scores")
PASS_THROUGH = (nn.Dropout, nn.Identity)


@dataclass(frozen=True)
class OutputInfo:
    name: str
    channels: int | None
    class_map: bool  #: one vector per cell (what the classifier computes per image)
    ending: str  #: one of ENDINGS


def _ending(node: object, ctx: Context) -> str:
    """What ``node`` ends in, looking through dropout and reshapes of its features."""
    for _ in range(8):
        if not isinstance(node, fx.Node):
            return "scores"
        if (
            module_is(node, ctx, nn.Softmax)
            or function_is(node, F.softmax, torch.softmax)
            or method_is(node, "softmax")
        ):
            return "softmax"
        if (
            module_is(node, ctx, nn.LogSoftmax)
            or function_is(node, F.log_softmax, torch.log_softmax)
            or method_is(node, "log_softmax")
        ):
            return "log-softmax"
        if (
            module_is(node, ctx, nn.Sigmoid)
            or function_is(node, torch.sigmoid, F.sigmoid)
            or method_is(node, "sigmoid")
        ):
            return "sigmoid"
        passes = (
            module_is(node, ctx, *PASS_THROUGH)
            or method_is(node, "view", "reshape", "flatten", "squeeze", "contiguous")
            or function_is(node, torch.flatten, F.dropout)
        )
        if not passes or not node.all_input_nodes:
            return "scores"
        node = node.all_input_nodes[0]
    return "scores"


def describe_outputs(ctx: Context) -> list[OutputInfo]:
    """The outputs of the planned graph (before its rewrite), in the model's order."""
    output = next(n for n in ctx.gm.graph.nodes if n.op == "output")
    leaves = output_leaves(output.args[0])
    infos = []
    for name, leaf in zip(output_names(output.args[0]), leaves, strict=True):
        shape = ctx.shape(leaf)
        channels = int(shape[1]) if shape and len(shape) >= 2 else None
        class_map = isinstance(ctx.layout(leaf), (Vec, Map))
        infos.append(OutputInfo(name, channels, class_map, _ending(leaf, ctx)))
    return infos
