"""Operations along the feature axis: softmax, log-softmax, normalisation, concatenation, and
sums, means and norms over the features.

On N×F the feature axis is 1 (or -1); on the converted N×F×rows×cols map it is axis 1, and the
same operation along axis 1 of the map is that operation on every cell's features. The rewrite
only fixes the axis number (for ``nn.Softmax`` and ``nn.LogSoftmax`` modules: a module with
``dim=1``). A reduction must keep its axis (``keepdim=True``), so that the result is still one
vector per cell; ``x / x.norm(dim=1, keepdim=True)`` then broadcasts as it did.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..layouts import ChannelsLastMap, Map, Vec
from .base import (
    Context,
    Decline,
    Rule,
    Step,
    argument,
    function_is,
    method_is,
    module_is,
    normalise_dims,
    replace_module,
    same_layout,
    set_argument,
)
from .elementwise import CAM_HINT
from .flat_concat import CONCATENATE, joins_flattened_maps

SOFTMAX = (F.softmax, F.log_softmax, torch.softmax, torch.log_softmax)
REDUCTIONS = (torch.sum, torch.mean, torch.norm, torch.amax, torch.linalg.vector_norm)
REDUCTION_METHODS = ("sum", "mean", "norm", "amax")
SOFTMAX_MODULES = (nn.Softmax, nn.LogSoftmax)


def _axis_argument(node: fx.Node) -> tuple[int, str, object]:
    """Where a matched operation takes its axis: (position, keyword, default)."""
    if function_is(node, *CONCATENATE):
        return 1, "dim", 0
    if function_is(node, F.normalize):
        return 2, "dim", 1
    if function_is(node, torch.norm, torch.linalg.vector_norm) or method_is(node, "norm"):
        return 2, "dim", None
    return 1, "dim", None


def _keeps_axis(node: fx.Node) -> bool:
    if function_is(node, torch.linalg.vector_norm) or function_is(node, torch.norm):
        return bool(argument(node, 3, "keepdim", False))
    if method_is(node, "norm"):
        return bool(argument(node, 3, "keepdim", False))
    return bool(argument(node, 2, "keepdim", False))


@dataclass(frozen=True)
class AxisOne:
    pass


class FeatureAxis(Rule[AxisOne]):
    name = "feature-axis"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        if function_is(node, *REDUCTIONS) or method_is(node, *REDUCTION_METHODS):
            # reductions over spatial or 1-sized axes are pools (see .global_pool)
            layout = ctx.layout(node.args[0])
            dims = normalise_dims(argument(node, *_axis_argument(node)), 4)
            over_features = isinstance(layout, (Vec, ChannelsLastMap)) or (
                isinstance(layout, Map) and dims is not None and 1 in dims
            )
            return over_features
        is_op = (
            function_is(node, *SOFTMAX, *CONCATENATE, F.normalize)
            or method_is(node, "softmax", "log_softmax")
            or module_is(node, ctx, *SOFTMAX_MODULES)
        )
        if joins_flattened_maps(node, ctx):
            return False  # see .flat_concat
        return is_op and bool(ctx.classifier_inputs(node))

    def _kind(self, node: fx.Node, ctx: Context) -> str:
        if function_is(node, *CONCATENATE):
            return "concatenation"
        if function_is(node, *REDUCTIONS) or method_is(node, *REDUCTION_METHODS):
            return "reduction"
        if function_is(node, F.normalize):
            return "normalisation"
        return "softmax"

    def check(self, node: fx.Node, ctx: Context) -> Step[AxisOne] | Decline:
        operation = self._kind(node, ctx)
        # linear operations commute with the mean of a class-activation map
        linear = (
            operation == "concatenation"
            or function_is(node, torch.sum, torch.mean)
            or method_is(node, "sum", "mean")
        )
        if ctx.mode == "cam" and not linear:
            return self.decline(node, f"{operation} is not affine; {CAM_HINT}")
        layout = same_layout(node, ctx)
        if operation == "concatenation":
            parts = node.args[0]
            inputs = ctx.classifier_inputs(node)
            if not isinstance(parts, (list, tuple)) or any(
                not isinstance(p, fx.Node) or p not in inputs for p in parts
            ):
                return self.decline(node, "concatenates features with other tensors")
        source = ctx.shape(node.all_input_nodes[0])
        assert source is not None
        if node.op == "call_module":
            dim = getattr(ctx.module(node), "dim", None)
            dim = 1 if dim is None and len(source) in (2, 4) else dim  # softmax's implicit axis
        else:
            position, keyword, default = _axis_argument(node)
            dim = argument(node, position, keyword, default)
        if not isinstance(dim, int):
            if isinstance(dim, (list, tuple)) and len(dim) == 1 and isinstance(dim[0], int):
                dim = dim[0]
            else:
                return self.decline(node, f"the axis of its {operation} is not one constant axis")
        if operation == "reduction" and not _keeps_axis(node):
            return self.decline(
                node,
                "reduces each image's features to one number; with keepdim=True it would stay "
                "one value per cell",
            )
        rank = len(source)
        if isinstance(layout, (Vec, Map)) and dim % rank == 1:
            if dim == 1:
                return self.keep(node, f"kept ({operation} along feature axis 1)", layout)
            return self.step(node, f"{operation} along feature axis {dim} → 1", layout, AxisOne())
        if isinstance(layout, ChannelsLastMap) and dim % rank == 3:
            return self.keep(node, f"kept ({operation} along the last, feature axis)", layout)
        return self.decline(
            node, f"its {operation} acts across images or positions, not along the features"
        )

    def rewrite(self, step: Step[AxisOne], ctx: Context) -> None:
        node = step.node
        if node.op == "call_module":
            module = ctx.module(node)
            replace_module(ctx, node, type(module)(dim=1))
            return
        position, keyword, _ = _axis_argument(node)
        set_argument(node, position, keyword, 1)
