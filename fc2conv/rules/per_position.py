"""Rule 5: layers of the head that act on each feature vector on their own.

An operation ``g`` that maps each image's feature vector independently has a per-position
equivalent on a map of vectors: apply ``g`` at every (row, col). Elementwise functions, dropout
and eval-mode batch norm already do that when the features sit on axis 1 (BatchNorm1d becomes a
BatchNorm2d with the same parameters and buffers); LayerNorm normalises the last axis, so it runs
between two permutes; softmax and concatenation along the feature axis move to axis 1.
``head="cam"`` allows only the affine ones, since only those commute with the removed mean.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..tracing import node_name
from .base import (
    ELEMENTWISE_BINARY,
    Context,
    Decline,
    Map,
    MapCL,
    NotTensor,
    Rule,
    Step,
    Vec,
    argument,
    function_is,
    method_is,
    module_is,
    replace_module,
    set_argument,
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
CAM_HINT = "head='cam' needs an affine head (Linear, Dropout, BatchNorm); use head='window'"


def _same_layout(node: fx.Node, ctx: Context) -> object:
    layouts = {type(ctx.layouts[a]) for a in ctx.head_inputs(node)}
    return ctx.layouts[ctx.head_inputs(node)[0]] if len(layouts) == 1 else None


class Elementwise(Rule):
    """Elementwise functions and dropout: unchanged, they already act per position."""

    name = "elementwise"

    def _affine(self, node: fx.Node, ctx: Context) -> bool | None:
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
            return len(ctx.head_inputs(node)) == 1
        return None

    def match(self, node: fx.Node, ctx: Context) -> bool:
        return bool(ctx.head_inputs(node)) and self._affine(node, ctx) is not None

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        layer = node_name(node)
        layout = _same_layout(node, ctx)
        if layout is None:
            return self.decline(node, layer, "combines classifier features of different layouts")
        others = [a for a in node.all_input_nodes if a not in ctx.head_inputs(node)]
        if others:
            return self.decline(
                node,
                layer,
                "combines the classifier features with a constant "
                "tensor, which would broadcast along the wrong axes",
            )
        if ctx.head == "cam" and not self._affine(node, ctx):
            return self.decline(node, layer, f"is not affine; {CAM_HINT}")
        return Step(
            self.name,
            node,
            layer,
            "kept (elementwise)",
            layout,  # type: ignore[arg-type]
            changes_graph=False,
        )


class BatchNorm(Rule):
    """BatchNorm1d over features becomes BatchNorm2d over channels, sharing parameters and buffers."""

    name = "batch-norm"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_norm = module_is(node, ctx, nn.BatchNorm1d, nn.BatchNorm2d) or function_is(
            node, F.batch_norm
        )
        return is_norm and bool(ctx.head_inputs(node))

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        layer = node_name(node)
        layout = ctx.layout(node.args[0])
        if isinstance(layout, Vec) and module_is(node, ctx, nn.BatchNorm1d):
            return Step(
                self.name,
                node,
                layer,
                "BatchNorm1d → BatchNorm2d (same parameters and buffers)",
                Vec(),
            )
        if isinstance(layout, (Vec, Map)):
            return Step(
                self.name, node, layer, "kept (normalises axis 1)", layout, changes_graph=False
            )
        return self.decline(node, layer, "normalises features that are not one vector per image")

    def rewrite(self, step: Step, ctx: Context) -> None:
        old = ctx.module(step.node)
        assert isinstance(old, nn.BatchNorm1d)
        with torch.device("meta"):
            new = nn.BatchNorm2d(
                old.num_features, old.eps, old.momentum, old.affine, old.track_running_stats
            )
        if old.affine:
            new.weight, new.bias = old.weight, old.bias
        for buffer in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(new, buffer, getattr(old, buffer))
        new.train(old.training)
        replace_module(ctx, step.node, new)


class LayerNorm(Rule):
    """LayerNorm over the feature axis runs on channels-last maps: permute, normalise, permute back."""

    name = "layer-norm"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_norm = module_is(node, ctx, nn.LayerNorm) or function_is(node, F.layer_norm)
        return is_norm and bool(ctx.head_inputs(node))

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        layer = node_name(node)
        if ctx.head == "cam":
            return self.decline(node, layer, f"LayerNorm is not affine; {CAM_HINT}")
        layout, shape = ctx.layout(node.args[0]), ctx.shape(node.args[0])
        assert shape is not None
        normalized = (
            tuple(ctx.module(node).normalized_shape)  # type: ignore[arg-type]
            if node.op == "call_module"
            else tuple(argument(node, 1, "normalized_shape"))
        )
        if len(normalized) != 1:
            return self.decline(node, layer, "normalises over more than the feature axis")
        if isinstance(layout, MapCL):
            return Step(
                self.name, node, layer, "kept (channels last)", MapCL(), changes_graph=False
            )
        if isinstance(layout, Vec):
            return Step(
                self.name,
                node,
                layer,
                "LayerNorm over features → applied channels-last at every position",
                Vec(),
            )
        return self.decline(node, layer, "normalises an axis that is not the feature axis")

    def rewrite(self, step: Step, ctx: Context) -> None:
        node, graph = step.node, ctx.gm.graph
        source = node.args[0]
        with graph.inserting_before(node):
            last = graph.call_method("permute", (source, 0, 2, 3, 1))
        node.args = (last, *node.args[1:])
        with graph.inserting_after(node):
            first = graph.call_method("permute", (node, 0, 3, 1, 2))
        node.replace_all_uses_with(first, delete_user_cb=lambda user: user is not first)


class FeatureAxis(Rule):
    """softmax, log_softmax and cat along the feature axis: that axis is 1 in the converted model."""

    name = "feature-axis"
    FUNCTIONS = (
        F.softmax,
        F.log_softmax,
        torch.softmax,
        torch.log_softmax,
        torch.cat,
        torch.concat,
    )

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_op = function_is(node, *self.FUNCTIONS) or method_is(node, "softmax", "log_softmax")
        return is_op and bool(ctx.head_inputs(node))

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        layer = node_name(node)
        is_cat = function_is(node, torch.cat, torch.concat)
        if not is_cat and ctx.head == "cam":
            return self.decline(node, layer, f"softmax is not affine; {CAM_HINT}")
        layout = _same_layout(node, ctx)
        if is_cat:
            parts = node.args[0]
            if not isinstance(parts, (list, tuple)) or any(
                not isinstance(p, fx.Node) or p not in ctx.head_inputs(node) for p in parts
            ):
                return self.decline(node, layer, "concatenates features with other tensors")
        shape = ctx.shape(node)
        assert shape is not None
        dim = argument(node, 1, "dim", 0 if is_cat else None)
        if not isinstance(dim, int):
            return self.decline(node, layer, "its axis is not a constant")
        if isinstance(layout, (Vec, Map)) and dim % len(shape) == 1:
            if dim == 1:
                return Step(
                    self.name, node, layer, "kept (feature axis 1)", layout, changes_graph=False
                )
            return Step(self.name, node, layer, f"feature axis {dim} → 1", layout)
        if isinstance(layout, MapCL) and dim % len(shape) == 3:
            return Step(
                self.name, node, layer, "kept (feature axis last)", layout, changes_graph=False
            )
        return self.decline(node, layer, "acts across images or positions, not along features")

    def rewrite(self, step: Step, ctx: Context) -> None:
        set_argument(step.node, 1, "dim", 1)


class Permute(Rule):
    """Moving a pooled map between channels-first and channels-last (as LayerNorm2d does)."""

    name = "permute"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_permute = method_is(node, "permute") or function_is(node, torch.permute)
        return is_permute and isinstance(ctx.layout(node.args[0]), (Map, MapCL))

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        layer = node_name(node)
        dims = node.args[1:] if method_is(node, "permute") and len(node.args) > 2 else node.args[1]
        dims = tuple(dims) if isinstance(dims, (list, tuple)) else ()
        layout = ctx.layout(node.args[0])
        if isinstance(layout, Map) and dims == (0, 2, 3, 1):
            return Step(
                self.name, node, layer, "kept (to channels last)", MapCL(), changes_graph=False
            )
        if isinstance(layout, MapCL) and dims == (0, 3, 1, 2):
            return Step(
                self.name, node, layer, "kept (to channels first)", Map(), changes_graph=False
            )
        return self.decline(node, layer, f"permutes a pooled map with {dims}")


class ShapeQuery(Rule):
    """``x.size()``, ``x.shape`` and ``x.dim()`` of the features; checked after the rewrite."""

    name = "shape-query"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_query = method_is(node, "size", "dim") or (
            node.op == "call_function" and node.target is getattr and node.args[1] == "shape"
        )
        return bool(is_query) and bool(ctx.head_inputs(node))

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        return Step(
            self.name, node, node_name(node), "shape query", NotTensor(), changes_graph=False
        )


class Convolution1x1(Rule):
    """A 1×1 convolution on a pooled map is already per position."""

    name = "conv1x1"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        return module_is(node, ctx, nn.Conv2d) and isinstance(ctx.layout(node.args[0]), Map)

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        conv = ctx.module(node)
        assert isinstance(conv, nn.Conv2d)
        layer = node_name(node)
        if (
            conv.kernel_size == (1, 1)
            and conv.stride == (1, 1)
            and conv.padding in ((0, 0), "valid")
        ):
            return Step(
                self.name, node, layer, "kept (1x1 convolution)", Map(), changes_graph=False
            )
        return self.decline(
            node,
            layer,
            f"a {conv.kernel_size} convolution of a pooled 1x1 map has no per-position equivalent",
        )


__all__ = [
    "BatchNorm",
    "Convolution1x1",
    "Elementwise",
    "FeatureAxis",
    "LayerNorm",
    "Permute",
    "ShapeQuery",
    "replace_module",
]
