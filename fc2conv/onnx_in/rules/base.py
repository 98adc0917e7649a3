"""What an ONNX rewrite rule sees and returns (after :mod:`fc2conv.conversion.rules.base`).

A rule *matches* a node, *checks* that an exact rewrite exists (a :class:`Step` carrying the rule,
the kind of the node's output and a typed payload, or a :class:`Decline` with one factual
sentence), and *rewrites* it: it appends the nodes that replace it to a :class:`Build`, ending in
the node's own output name, so that every later node reads the converted tensor unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from ..graph import OnnxGraph
from ..kinds import NCHW, Kind, Roles, Trunk

Payload = TypeVar("Payload")


@dataclass(frozen=True)
class NoPayload:
    """The payload of a step that needs nothing beyond its node."""


@dataclass
class Step(Generic[Payload]):
    """A planned change (or an explicit no-change) of one node, with the rule that makes it."""

    rule: OnnxRule[Payload]
    node: Any
    action: str
    kind: Kind | None
    payload: Payload
    changes_graph: bool = True

    def __str__(self) -> str:
        return f"{describe(self.node)} ({self.node.op_type}): {self.action}"


@dataclass
class Decline:
    """A rule's reason why a node has no exact per-window form."""

    rule: str
    node: Any
    reason: str

    @property
    def where(self) -> str:
        return f"node {describe(self.node)} ({self.node.op_type})"


@dataclass
class Context:
    """What rules read: the graph, every tensor's shape at the canonical size, the kinds given so
    far, and what each class output ends in (softmax, sigmoid, ...)."""

    graph: OnnxGraph
    shapes: dict[str, list[int] | None]
    kinds: dict[str, Kind] = field(default_factory=dict)
    endings: dict[str, str] = field(default_factory=dict)

    @property
    def opset(self) -> int:
        return self.graph.opset

    def kind(self, name: str) -> Kind | None:
        return self.kinds.get(name) if name else None

    def shape(self, name: str) -> list[int] | None:
        return self.shapes.get(name)

    def constant(self, name: str) -> np.ndarray | None:
        return self.graph.constant(name) if name else None

    def tensor_inputs(self, node: Any) -> list[str]:
        """The inputs of ``node`` that have a kind (not constants, not shape computations)."""
        return [name for name in node.input if self.kind(name) is not None]

    def first_of(self, node: Any, *kinds: type) -> str | None:
        return next((n for n in node.input if isinstance(self.kind(n), kinds)), None)


class OnnxRule(Generic[Payload]):
    """Base class of the ONNX rules: override ``match``, ``check`` and, for a step that changes
    the graph, ``rewrite``."""

    name: ClassVar[str] = "rule"

    def match(self, node: Any, ctx: Context) -> bool:
        raise NotImplementedError

    def check(self, node: Any, ctx: Context) -> Step[Payload] | Decline:
        raise NotImplementedError

    def rewrite(self, step: Step[Payload], build: Build) -> None:
        """Append the nodes that replace ``step.node``; the default keeps the node."""
        build.nodes.append(step.node)

    def step(self, node: Any, action: str, kind: Kind | None, payload: Payload) -> Step[Payload]:
        return Step(self, node, action, kind, payload)

    def keep(self, node: Any, kind: Kind | None, action: str = "kept") -> Step[Any]:
        """A step that leaves the node as it is."""
        return Step(self, node, action, kind, NoPayload(), changes_graph=False)

    def decline(self, node: Any, reason: str) -> Decline:
        return Decline(self.name, node, reason)


@dataclass
class Build:
    """The converted graph's nodes and new constants, as the rules append them."""

    ctx: Context
    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    _count: int = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"fc2conv/{hint}_{self._count}"

    def const(self, value: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def emit(
        self, op_type: str, inputs: list[str], hint: str, output: str | None = None, **attrs: Any
    ) -> str:
        """Append one node; its output is ``output`` or a fresh name."""
        from onnx import helper

        output = output or self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def copy(self, node: Any, inputs: dict[str, str]) -> Any:
        """Append a copy of ``node`` that reads ``inputs`` in place of some of its inputs and
        keeps only its first output (a dropout's mask, a batch norm's running statistics go)."""
        import onnx

        new = onnx.NodeProto()
        new.CopyFrom(node)
        new.input[:] = [inputs.get(name, name) for name in new.input]
        del new.output[1:]
        self.nodes.append(new)
        return new

    def nchw(self, source: str, roles: Roles) -> str:
        """``source`` (a map whose axes have ``roles``) as N×C×H×W: the tensor a Transpose made
        it from where there is one, else a new Transpose."""
        if roles == NCHW:
            return source
        producer = self.ctx.graph.producer.get(source)
        if producer is not None and producer.op_type == "Transpose":
            before = self.ctx.kind(producer.input[0])
            if isinstance(before, Trunk) and before.roles == NCHW:
                return str(producer.input[0])
        perm = [roles.index(role) for role in NCHW]
        return self.emit("Transpose", [source], "to_nchw", perm=perm)


# --- helpers shared by rules -------------------------------------------------------------------


def describe(node: Any) -> str:
    return node.name or node.output[0]


def attribute(node: Any, name: str, default: Any) -> Any:
    """The value of ``node``'s attribute ``name`` (strings decoded), or ``default``."""
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def axes_of(ctx: Context, node: Any, index: int = 1) -> list[int] | None:
    """The ``axes`` of a Reduce*/Squeeze/Unsqueeze node: its attribute (older opsets) or its
    input ``index`` (newer ones); None where they are not constant, [] where absent."""
    axes = attribute(node, "axes", None)
    if axes is not None:
        return [int(axis) for axis in axes]
    if len(node.input) > index and node.input[index]:
        value = ctx.constant(node.input[index])
        return None if value is None else [int(v) for v in value.reshape(-1)]
    return []


def feature_count(ctx: Context, name: str, axis: int) -> int | None:
    shape = ctx.shape(name)
    return shape[axis] if shape is not None and len(shape) > axis else None


def per_feature(value: np.ndarray, rank: int, axis: int, features: int) -> np.ndarray | None:
    """A constant that broadcasts over a vector of ``rank`` with ``features`` on ``axis``, as
    1×F×1×1 for the converted map (a scalar stays as it is); None if it is not one value per
    feature or a single value."""
    if value.size == 1:
        return value.reshape(())
    if value.ndim > rank:
        return None
    padded = (1,) * (rank - value.ndim) + value.shape
    if padded[axis] != features or value.size != features:
        return None
    return value.reshape(1, features, 1, 1)


def trunk_roles(ctx: Context, node: Any) -> Roles | None:
    """The roles of a kept node's output: those of its first trunk input of the same shape, else
    of the same rank (broadcasting keeps a map's axes), else unknown."""
    out = ctx.shape(node.output[0]) if node.output else None
    candidates = [
        (name, kind.roles)
        for name in node.input
        if isinstance(kind := ctx.kind(name), Trunk) and kind.roles is not None
    ]
    for name, roles in candidates:
        if out is not None and ctx.shape(name) == out:
            return roles
    for _, roles in candidates:
        if out is not None and len(roles) == len(out):
            return roles
    return None
