"""A per-feature affine map on flattened features (BatchNorm1d over C·H·W, or a constant of C·H·W
values): folded into the Linear that reads them.

On the converted map the window of each cell starts somewhere else, so a parameter that belongs
to position (h, w) of the window cannot be applied to the map itself. But it can go into the
Linear: ``W (x·s + t) + b = (W·diag(s)) x + (W t + b)``. In eval mode BatchNorm1d is such an
affine map, ``s = γ / sqrt(var + ε)`` and ``t = β − mean·s``. The folded kernel and bias are new
tensors (a copy of that one Linear's weight; see :mod:`.linear`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace

import torch
from torch import fx, nn

from ..layouts import Flat, Layout
from .base import Context, Decline, Rule, Step, function_is, module_is, replace_with_input

ARITHMETIC = {
    operator.mul: "mul",
    torch.mul: "mul",
    "mul": "mul",
    operator.truediv: "div",
    torch.div: "div",
    "div": "div",
    operator.add: "add",
    torch.add: "add",
    "add": "add",
    operator.sub: "sub",
    torch.sub: "sub",
    "sub": "sub",
}


@dataclass(frozen=True, eq=False)
class Affine:
    """``x * scale + shift``, per flattened feature (both of C·H·W values)."""

    scale: torch.Tensor
    shift: torch.Tensor


def flat_constant(node: fx.Node, ctx: Context, layout: Layout | None = None) -> fx.Node | None:
    """The per-feature constant that ``node`` combines flattened features with (``x * c``,
    ``x + c``, …), or None when ``node`` is no such operation. ``layout``: that of its input,
    when the planner has not assigned it yet."""
    if node.op not in ("call_function", "call_method") or node.target not in ARITHMETIC:
        return None
    if len(node.args) != 2 or not isinstance(node.args[1], fx.Node):
        return None
    layout, constant = layout or ctx.layout(node.args[0]), node.args[1]
    if not isinstance(layout, Flat) or constant.op != "get_attr":
        return None
    features = layout.channels * layout.height * layout.width
    return constant if ctx.shape(constant) in ((features,), (1, features)) else None


def _affine_of(node: fx.Node, ctx: Context) -> tuple[str, Affine]:
    if node.op == "call_module":
        norm = ctx.module(node)
        assert isinstance(norm, nn.BatchNorm1d)
        assert norm.running_mean is not None and norm.running_var is not None
        scale = torch.rsqrt(norm.running_var.detach() + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.detach()
        shift = -norm.running_mean.detach() * scale
        if norm.bias is not None:
            shift = shift + norm.bias.detach()
        return "BatchNorm1d", Affine(scale, shift)
    constant = flat_constant(node, ctx)
    assert constant is not None
    value = _attribute(ctx, str(constant.target)).detach().reshape(-1)
    kind = ARITHMETIC[node.target]
    ones, zeros = torch.ones_like(value), torch.zeros_like(value)
    scale, shift = {
        "mul": (value, zeros),
        "div": (1 / value, zeros),
        "add": (ones, value),
        "sub": (ones, -value),
    }[kind]
    return f"{kind} by a per-feature constant", Affine(scale, shift)


def _attribute(ctx: Context, target: str) -> torch.Tensor:
    owner, _, name = target.rpartition(".")
    value = getattr(ctx.gm.get_submodule(owner), name)
    assert isinstance(value, torch.Tensor)
    return value


class FlatAffine(Rule[Affine]):
    name = "flat-affine"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_norm = module_is(node, ctx, nn.BatchNorm1d) and isinstance(
            ctx.layout(node.args[0]), Flat
        )
        return is_norm or flat_constant(node, ctx) is not None

    def check(self, node: fx.Node, ctx: Context) -> Step[Affine] | Decline:
        layout = ctx.layout(node.args[0])
        assert isinstance(layout, Flat)
        if not all(
            module_is(user, ctx, nn.Linear)
            or function_is(user, torch.nn.functional.linear)
            or flat_constant(user, ctx, layout) is not None  # a chain of them folds too
            for user in node.users
        ):
            return self.decline(
                node,
                "scales the flattened map per feature, which folds only into a Linear that "
                "reads it directly",
            )
        if node.op == "call_module":
            norm = ctx.module(node)
            if getattr(norm, "running_mean", None) is None:
                return self.decline(node, "normalises with batch statistics (no running ones)")
        what, affine = _affine_of(node, ctx)
        return self.step(
            node,
            f"{what} on the flattened map → folded into the next Linear",
            replace(layout, affine=(*layout.affine, affine)),
            affine,
        )

    def rewrite(self, step: Step[Affine], ctx: Context) -> None:
        replace_with_input(step.node, step.node.args[0])  # type: ignore[arg-type]
