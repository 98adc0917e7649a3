"""Elementwise functions and dropout on the classifier's features: kept as they are.

A function ``g`` applied to every feature on its own (an activation, dropout, a sum of two
feature tensors) already acts per position on a map of feature vectors: ``g`` at every
(row, col) of the map is ``g`` on every window's features. ``mode="cam"`` allows only the affine
ones, since only those commute with the mean the class-activation map removes.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from .base import (
    ELEMENTWISE_BINARY,
    Context,
    Decline,
    NoPayload,
    Rule,
    Step,
    function_is,
    method_is,
    module_is,
    same_layout,
)

AFFINE_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
NONLINEAR_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.PReLU,
)
AFFINE_FUNCTIONS = (F.dropout, torch.dropout)
NONLINEAR_FUNCTIONS = (
    F.relu,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardswish,
    F.hardsigmoid,
    F.hardtanh,
    F.softplus,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    F.sigmoid,
    F.tanh,
    torch.clamp,
)
AFFINE_METHODS = ("contiguous", "float", "clone")
NONLINEAR_METHODS = ("relu", "sigmoid", "tanh", "clamp", "relu_", "sigmoid_")
CAM_HINT = "mode='cam' needs an affine classifier (Linear, Dropout, BatchNorm); use mode='window'"


def is_affine(node: fx.Node, ctx: Context) -> bool | None:
    """True for affine elementwise operations, False for other elementwise ones, None when
    ``node`` is not elementwise."""
    if module_is(node, ctx, *AFFINE_MODULES) or function_is(node, *AFFINE_FUNCTIONS):
        return True
    if method_is(node, *AFFINE_METHODS):
        return True
    if module_is(node, ctx, *NONLINEAR_MODULES) or function_is(node, *NONLINEAR_FUNCTIONS):
        return False
    if method_is(node, *NONLINEAR_METHODS):
        return False
    if function_is(node, *ELEMENTWISE_BINARY) or method_is(node, "add", "sub", "mul", "div"):
        scalars = [a for a in node.args if not isinstance(a, fx.Node)]
        if node.target in (operator.add, operator.sub, torch.add, torch.sub, "add", "sub"):
            return not scalars
        return len(ctx.classifier_inputs(node)) == 1
    return None


class Elementwise(Rule[NoPayload]):
    name = "elementwise"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        return bool(ctx.classifier_inputs(node)) and is_affine(node, ctx) is not None

    def check(self, node: fx.Node, ctx: Context) -> Step[NoPayload] | Decline:
        layout = same_layout(node, ctx)
        if layout is None:
            return self.decline(node, "combines classifier features of different layouts")
        inputs = ctx.classifier_inputs(node)
        if any(a not in inputs for a in node.all_input_nodes):
            return self.decline(
                node,
                "combines the classifier features with a constant tensor, which would "
                "broadcast along the wrong axes",
            )
        if ctx.mode == "cam" and not is_affine(node, ctx):
            return self.decline(node, f"is not affine; {CAM_HINT}")
        return self.keep(node, "kept (elementwise)", layout)
