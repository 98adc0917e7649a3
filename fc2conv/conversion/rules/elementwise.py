"""Elementwise functions and dropout on the classifier's features: kept as they are.

A function ``g`` applied to every feature on its own (an activation, dropout, a sum of two
feature tensors) already acts per position on a map of feature vectors: ``g`` at every
(row, col) of the map is ``g`` on every window's features. ``mode="cam"`` allows only the affine
ones, since only those commute with the mean the class-activation map removes.

A constant combined with N×F features broadcasts along their last axis: a scalar (a number, or a
learnable one-element parameter) stays as it is; a per-feature constant of F values is viewed as
1×F×1×1, so that it meets the features on axis 1 of the map (a view: no copy).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..layouts import Vec
from .base import (
    ELEMENTWISE_BINARY,
    Context,
    Decline,
    Rule,
    Step,
    function_is,
    method_is,
    module_is,
    same_layout,
)
from .flat_affine import flat_constant

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


@dataclass(frozen=True)
class PerFeature:
    """Positions of the arguments that are per-feature constants, to view as 1×F×1×1."""

    arguments: tuple[int, ...]


class Elementwise(Rule[PerFeature]):
    name = "elementwise"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        if flat_constant(node, ctx) is not None:
            return False  # a per-feature affine map of a flattened map: see .flat_affine
        return bool(ctx.classifier_inputs(node)) and is_affine(node, ctx) is not None

    def check(self, node: fx.Node, ctx: Context) -> Step[PerFeature] | Decline:
        layout = same_layout(node, ctx)
        if layout is None:
            return self.decline(node, "combines classifier features of different layouts")
        inputs = ctx.classifier_inputs(node)
        features = (ctx.shape(inputs[0]) or (0, 0))[1]
        per_feature = []
        for position, argument_node in enumerate(node.args):
            if not isinstance(argument_node, fx.Node) or argument_node in inputs:
                continue
            shape = ctx.shape(argument_node)
            if argument_node.op != "get_attr" or shape is None:
                return self.decline(
                    node, "combines the classifier features with a tensor computed elsewhere"
                )
            if math.prod(shape) == 1:
                continue  # a scalar broadcasts the same way on a map
            if isinstance(layout, Vec) and shape in ((features,), (1, features)):
                per_feature.append(position)
                continue
            return self.decline(
                node,
                f"combines the classifier features with a {'x'.join(map(str, shape))} constant, "
                "which would broadcast along the wrong axes of a map",
            )
        if ctx.mode == "cam" and not is_affine(node, ctx):
            return self.decline(node, f"is not affine; {CAM_HINT}")
        if per_feature:
            return self.step(
                node,
                "per-feature constant viewed as 1xFx1x1",
                layout,
                PerFeature(tuple(per_feature)),
            )
        return self.keep(node, "kept (elementwise)", layout)

    def rewrite(self, step: Step[PerFeature], ctx: Context) -> None:
        node = step.node
        args = list(node.args)
        with ctx.gm.graph.inserting_before(node):
            for position in step.payload.arguments:
                args[position] = ctx.gm.graph.call_method("view", (args[position], 1, -1, 1, 1))
        node.args = tuple(args)
