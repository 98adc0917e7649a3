"""What a rewrite rule sees and returns.

A rule *matches* a node, *checks* that an exact rewrite exists (returning a :class:`Step` that
carries the rule itself and a typed payload, or a :class:`Decline` with one factual sentence), and
*rewrites* the graph for its step. Applying a plan calls ``step.rule.rewrite(step, context)``, so
a caller's own rule list works exactly like :data:`fc2conv.conversion.rules.DEFAULT_RULES`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import fx, nn

from ..layouts import Layout, on_classifier_path
from ..tracing import node_name

Payload = TypeVar("Payload")


@dataclass(frozen=True)
class NoPayload:
    """The payload of a step that needs nothing beyond its node."""


@dataclass
class Step(Generic[Payload]):
    """A planned change (or an explicit no-change) for one node, with the rule that makes it."""

    rule: Rule[Payload]
    node: fx.Node
    layer: str
    action: str
    layout: Layout
    payload: Payload
    changes_graph: bool = True


@dataclass
class Decline:
    """A rule's reason why a node has no exact per-position form."""

    rule: str
    node: fx.Node
    layer: str
    reason: str


@dataclass
class Context:
    """Everything rules may read: the graph module, the canonical shapes, the layouts assigned so
    far, and the conversion mode ("window" or "cam")."""

    gm: fx.GraphModule
    shapes: dict[fx.Node, tuple[int, ...]]
    layouts: dict[fx.Node, Layout]
    mode: str
    name: str
    #: for 4-D tensors, which of their axes hold the batch, channels, height and width, where
    #: probing the model at other sizes told (see ``planner.axis_orders``)
    orders: dict[fx.Node, tuple[int, ...]] = field(default_factory=dict)

    def module(self, node: fx.Node) -> nn.Module:
        return self.gm.get_submodule(str(node.target))

    def shape(self, node: Any) -> tuple[int, ...] | None:
        return self.shapes.get(node) if isinstance(node, fx.Node) else None

    def layout(self, node: Any) -> Layout | None:
        return self.layouts.get(node) if isinstance(node, fx.Node) else None

    def classifier_inputs(self, node: fx.Node) -> list[fx.Node]:
        """The inputs of ``node`` that are on the classifier path."""
        return [a for a in node.all_input_nodes if on_classifier_path(self.layouts.get(a))]


class Rule(Generic[Payload]):
    """Base class of rewrite rules: override ``match``, ``check`` and, when a step changes the
    graph, ``rewrite``."""

    name: ClassVar[str] = "rule"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        raise NotImplementedError

    def check(self, node: fx.Node, ctx: Context) -> Step[Payload] | Decline:
        raise NotImplementedError

    def rewrite(self, step: Step[Payload], ctx: Context) -> None:
        """Change the graph for ``step``; the default is no change."""

    def finish(self, step: Step[Payload], ctx: Context) -> None:
        """Runs after every rewrite and dead-code elimination; may raise UnsupportedModelError
        for what only the finished graph shows. The default does nothing."""

    def step(
        self,
        node: fx.Node,
        action: str,
        layout: Layout,
        payload: Payload,
        *,
        changes_graph: bool = True,
    ) -> Step[Payload]:
        return Step(self, node, node_name(node), action, layout, payload, changes_graph)

    def keep(self, node: fx.Node, action: str, layout: Layout) -> Step[Any]:
        """A step that leaves the node as it is (it is already per position)."""
        return Step(self, node, node_name(node), action, layout, NoPayload(), False)

    def decline(self, node: fx.Node, reason: str) -> Decline:
        return Decline(self.name, node, node_name(node), reason)


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


def same_layout(node: fx.Node, ctx: Context) -> Layout | None:
    """The layout shared by every classifier input of ``node``, or None if they differ."""
    inputs = ctx.classifier_inputs(node)
    layouts = {type(ctx.layouts[a]) for a in inputs}
    return ctx.layouts[inputs[0]] if len(layouts) == 1 else None


def replace_with_input(node: fx.Node, source: fx.Node) -> None:
    """Make every user of ``node`` read ``source`` instead, and drop ``node``."""
    node.replace_all_uses_with(source)
    node.graph.erase_node(node)


def replace_with_call(node: fx.Node, function: Any, args: tuple[Any, ...]) -> fx.Node:
    """Put ``function(*args)`` where ``node`` was, and drop ``node``."""
    graph = node.graph
    with graph.inserting_after(node):
        new = graph.call_function(function, args)
    node.replace_all_uses_with(new)
    graph.erase_node(node)
    return new


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
