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


#: each ending with the module, functions and tensor method that compute it
ENDING_OPERATIONS = (
    ("softmax", nn.Softmax, (F.softmax, torch.softmax), "softmax"),
    ("log-softmax", nn.LogSoftmax, (F.log_softmax, torch.log_softmax), "log_softmax"),
    ("sigmoid", nn.Sigmoid, (torch.sigmoid, F.sigmoid), "sigmoid"),
)


def _ending(node: object, ctx: Context) -> str:
    """What ``node`` ends in, looking through dropout and reshapes of its features."""
    for _ in range(8):
        if not isinstance(node, fx.Node):
            return "scores"
        for ending, module, functions, method in ENDING_OPERATIONS:
            if (
                module_is(node, ctx, module)
                or function_is(node, *functions)
                or method_is(node, method)
            ):
                return ending
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
