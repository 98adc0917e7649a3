"""The plan for an ONNX classifier: which rule rewrites, keeps or refuses each node, found in one
walk over the graph in its (topological) order; and applying it.

Every tensor gets a kind (:mod:`.kinds`) from the image input on. Each node goes to the first rule
of the list that matches it; a node that reads the classifier path and matches no rule is
declined. A pooled or flattened branch that flows back into the trunk (a squeeze-and-excitation
gate: ``GlobalAveragePool`` → ``Conv`` → ``HardSigmoid`` → ``Mul`` with the map) is not the
classifier: when a node combines it with a trunk map, every step derived from that pool is taken
back and its nodes are kept, as :mod:`fc2conv.conversion.planner` does for PyTorch models. Every
remaining decline that is not the consequence of an earlier one (a node reading a refused node's
output) is listed in one :class:`UnsupportedModelError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UnsupportedModelError
from .graph import OnnxGraph
from .kinds import NCHW, Kind, Trunk, Vec, on_classifier_path
from .rules import ONNX_RULES, Build, Context, Decline, OnnxRule, Step
from .rules.base import NoPayload, describe

__all__ = ["OnnxPlan", "apply", "plan_graph"]


class _Kept(OnnxRule):
    """The rule of a node the planner keeps on its own (constants, reverted gates)."""

    name = "kept"


KEPT = _Kept()


@dataclass
class OnnxPlan:
    """The walk's result: a step for every node that has one, every decline, the pools found to
    be gates, and notes on what the cells mean."""

    name: str
    ctx: Context
    steps: dict[int, Step] = field(default_factory=dict)  #: by the node's index in the graph
    declines: dict[int, Decline] = field(default_factory=dict)
    gates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[Step]:
        """The steps that change the graph, in graph order."""
        return [step for _, step in sorted(self.steps.items()) if step.changes_graph]

    def raise_declines(self) -> None:
        if not self.declines:
            return
        declines = [self.declines[index] for index in sorted(self.declines)]
        if len(declines) == 1:
            only = declines[0]
            raise UnsupportedModelError(f"{self.name}: {only.where} {only.reason}")
        raise UnsupportedModelError(
            f"{self.name}: {len(declines)} nodes have no exact fully convolutional form:",
            [(decline.where, decline.reason) for decline in declines],
        )

    def __str__(self) -> str:
        lines = [f"{self.name}: {len(self.changes)} rewrites"]
        lines += [f"  {step}" for step in self.changes]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


class _Walk:
    def __init__(self, ctx: Context, rules: tuple[OnnxRule, ...], plan: OnnxPlan) -> None:
        self.ctx = ctx
        self.rules = rules
        self.plan = plan
        #: for each tensor of the classifier path, the pools and flattens it derives from
        self.entries: dict[str, frozenset[int]] = {}
        self.index_of: dict[str, int] = {}  #: the node that produced each tensor
        self.refused: set[str] = set()  #: outputs of declined nodes

    def run(self, image: str) -> None:
        self.ctx.kinds[image] = Trunk(NCHW)
        for index, node in enumerate(self.ctx.graph.model.graph.node):
            for output in node.output:
                self.index_of[output] = index
            self.visit(index, node)

    def visit(self, index: int, node: Any) -> None:
        ctx = self.ctx
        if not ctx.tensor_inputs(node):
            return  # a constant or a shape computation
        path = [name for name in node.input if on_classifier_path(ctx.kind(name))]
        if path and any(isinstance(ctx.kind(name), Trunk) for name in node.input):
            self._to_trunk(path)
            path = []
        rule = next((rule for rule in self.rules if rule.match(node, ctx)), None)
        if rule is None:
            reason = (
                "in the classifier head has no exact convolutional form"
                if path
                else "matches none of the rules (none keeps or converts it)"
            )
            result: Step | Decline = Decline("none", node, reason)
        else:
            result = rule.check(node, ctx)
        follows = any(name in self.refused for name in node.input)  # from a refused node
        if follows or isinstance(result, Decline):
            self.refused.update(node.output)
        if isinstance(result, Decline):
            if not follows:
                self.plan.declines[index] = result
            kind = self._kind_after_decline(node, path)
        else:
            self.plan.steps[index] = result
            kind = result.kind
        outputs = [o for o in node.output if o] if isinstance(kind, Trunk) else node.output[:1]
        for output in outputs:
            if kind is not None:
                ctx.kinds[output] = kind
            if on_classifier_path(kind):
                self.entries[output] = (
                    frozenset().union(*(self.entries.get(name, frozenset()) for name in path))
                    if path
                    else frozenset({index})
                )

    def _kind_after_decline(self, node: Any, path: list[str]) -> Kind | None:
        """A declined node's output gets a kind so that the walk goes on and finds every other
        node in the way: that of the classifier input it reads, at the output's rank."""
        if not path:
            return Trunk(None)
        kind = self.ctx.kind(path[0])
        shape = self.ctx.shape(node.output[0])
        if isinstance(kind, Vec) and shape is not None:
            return Vec(len(shape), kind.axis if kind.axis < len(shape) else 1)
        return kind

    def _to_trunk(self, path: list[str]) -> None:
        """The pools and flattens feeding ``path`` are gates: every tensor derived from them goes
        back to the trunk, and their nodes are kept as they are."""
        gates = frozenset().union(*(self.entries.get(name, frozenset()) for name in path))
        nodes = self.ctx.graph.model.graph.node
        self.plan.gates.extend(describe(nodes[index]) for index in sorted(gates))
        for tensor, entries in list(self.entries.items()):
            if not entries & gates:
                continue
            del self.entries[tensor]
            self.ctx.kinds[tensor] = Trunk(None)
            index = self.index_of[tensor]
            self.plan.declines.pop(index, None)
            self.refused.discard(tensor)
            node = nodes[index]
            action = "kept global: its result gates the trunk" if index in gates else "kept"
            self.plan.steps[index] = Step(KEPT, node, action, Trunk(None), NoPayload(), False)


def plan_graph(
    graph: OnnxGraph,
    shapes: dict[str, list[int] | None],
    image: str,
    rules: tuple[OnnxRule, ...] = ONNX_RULES,
) -> OnnxPlan:
    """Walk ``graph`` (its image input named ``image``) with ``rules``; see the module
    docstring. Does not raise for declines: :meth:`OnnxPlan.raise_declines` does."""
    ctx = Context(graph, shapes)
    plan = OnnxPlan(graph.name, ctx)
    _Walk(ctx, tuple(rules), plan).run(image)
    if plan.gates:
        plan.notes.append(
            f"{len(plan.gates)} pooling(s) feed gates back into the trunk "
            "(e.g. squeeze-and-excitation) and stay global: the cells of a larger image depend "
            "on the whole image"
        )
    return plan


def apply(plan: OnnxPlan) -> Build:
    """The converted node list: each step's rule rewrites its node, every other node is kept."""
    build = Build(plan.ctx)
    for index, node in enumerate(plan.ctx.graph.model.graph.node):
        step = plan.steps.get(index)
        if step is not None and step.changes_graph:
            step.rule.rewrite(step, build)
        else:
            build.nodes.append(node)
    return build
