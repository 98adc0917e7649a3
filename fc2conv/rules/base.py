"""What a rewrite rule sees and returns.

The converter walks the traced graph in order and gives every node a *layout*: how the tensor it
produces is laid out in the original model and what it becomes in the converted one.

- ``Trunk``: untouched (the convolutional trunk, gates, anything before the classifier);
  ``order`` says whether a 4-D trunk tensor is known to be NCHW or NHWC.
- ``Flat``: a row-major flatten of an NCHW map of C×H×W (original N×CHW); converted: the map itself.
- ``Vec``: a per-image feature vector (original N×F); converted: N×F×rows×cols.
- ``Map``: a pooled map (original N×C×1×1); converted: N×C×rows×cols.
- ``MapCL``: a pooled map, channels last (original N×1×1×C); converted: N×rows×cols×C.

A rule *matches* a node, *checks* that an exact rewrite exists (returning a :class:`Step`, or a
:class:`Decline` with one factual sentence), and *rewrites* the graph.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import fx, nn


@dataclass(frozen=True)
class Trunk:
    order: str | None = None


@dataclass(frozen=True)
class Flat:
    channels: int
    height: int
    width: int


@dataclass(frozen=True)
class Vec:
    pass


@dataclass(frozen=True)
class Map:
    pass


@dataclass(frozen=True)
class MapCL:
    pass


@dataclass(frozen=True)
class Squeezed:
    """A pooled map with one of its 1x1 axes squeezed away (original N×C×1)."""


@dataclass(frozen=True)
class NotTensor:
    pass


Layout = Trunk | Flat | Vec | Map | MapCL | Squeezed | NotTensor
HEAD_LAYOUTS = (Flat, Vec, Map, MapCL, Squeezed)


def is_head(layout: Layout | None) -> bool:
    return isinstance(layout, HEAD_LAYOUTS)


@dataclass
class Step:
    """A planned change (or an explicit no-change) for one node."""

    rule: str
    node: fx.Node
    layer: str
    action: str
    layout: Layout
    data: dict[str, Any] = field(default_factory=dict)
    changes_graph: bool = True


@dataclass
class Decline:
    rule: str
    node: fx.Node
    layer: str
    reason: str


@dataclass
class Context:
    """Everything rules may read: the graph module, canonical shapes, layouts so far, the head mode."""

    gm: fx.GraphModule
    shapes: dict[fx.Node, tuple[int, ...]]
    layouts: dict[fx.Node, Layout]
    head: str
    name: str

    def module(self, node: fx.Node) -> nn.Module:
        return self.gm.get_submodule(str(node.target))

    def shape(self, node: Any) -> tuple[int, ...] | None:
        return self.shapes.get(node) if isinstance(node, fx.Node) else None

    def layout(self, node: Any) -> Layout | None:
        return self.layouts.get(node) if isinstance(node, fx.Node) else None

    def head_inputs(self, node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if is_head(self.layouts.get(a))]


class Rule:
    """Base class of rewrite rules: override ``match``, ``check`` and ``rewrite``."""

    name: ClassVar[str] = "rule"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        raise NotImplementedError

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        raise NotImplementedError

    def rewrite(self, step: Step, ctx: Context) -> None:
        """Change the graph for ``step``; the default is no change."""

    def decline(self, node: fx.Node, layer: str, reason: str) -> Decline:
        return Decline(self.name, node, layer, reason)


# --- helpers shared by rules -------------------------------------------------------------------


def module_is(node: fx.Node, ctx: Context, *types: type) -> bool:
    return node.op == "call_module" and isinstance(ctx.module(node), types)


def function_is(node: fx.Node, *functions: Any) -> bool:
    return node.op == "call_function" and any(node.target is f for f in functions)


def method_is(node: fx.Node, *names: str) -> bool:
    return node.op == "call_method" and node.target in names


def argument(node: fx.Node, index: int, keyword: str, default: Any = None) -> Any:
    """Positional-or-keyword argument of a call node."""
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(keyword, default)


def set_argument(node: fx.Node, index: int, keyword: str, value: Any) -> None:
    if len(node.args) > index:
        args = list(node.args)
        args[index] = value
        node.args = tuple(args)
    else:
        node.kwargs = {**node.kwargs, keyword: value}


def normalise_dims(dims: Any, rank: int) -> tuple[int, ...] | None:
    """Dimension argument(s) as sorted non-negative ints, or None when not constant."""
    if isinstance(dims, int):
        dims = (dims,)
    if not isinstance(dims, Sequence) or not all(isinstance(d, int) for d in dims):
        return None
    return tuple(sorted(d % rank for d in dims))


def replace_with_input(node: fx.Node, source: fx.Node) -> None:
    """Make every user of ``node`` read ``source`` instead, and drop ``node``."""
    node.replace_all_uses_with(source)
    node.graph.erase_node(node)


def replace_module(ctx: Context, node: fx.Node, new: nn.Module) -> None:
    """Install ``new`` for this call site; keep the dotted name when the call site is its only one."""
    target = str(node.target)
    users = [n for n in ctx.gm.graph.nodes if n.op == "call_module" and n.target == target]
    if len(users) == 1:
        ctx.gm.delete_submodule(target)
    else:  # the module is called elsewhere too: give this call site a module of its own
        target = f"{target.replace('.', '_')}_fc2conv_{users.index(node)}"
        node.target = target
    ctx.gm.add_submodule(target, new)


ELEMENTWISE_BINARY = (
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    torch.add,
    torch.sub,
    torch.mul,
    torch.div,
)
