"""The plan: which node each rule rewrites, keeps or refuses, found in one walk over the graph.

The walk gives every node a layout (see :mod:`.layouts`). Nodes that read only trunk tensors
stay as they are, except where a rule finds the classifier's entry (a flatten or a global pool of
an NCHW map) or an adaptive pool to fix. From there on, every node must have a rule that makes
it per-position; if one does not, the plan lists it among the declines, with every other reason.
A pooled branch that flows back into the trunk (a squeeze-and-excitation gate) is not the
classifier: it is left alone.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from ..errors import TraceError
from ..geometry import padding_note
from .declared import declared_channels
from .layouts import NCHW, Map, NotTensor, Trunk, Vec, on_classifier_path
from .receptive import reads_beyond_window
from .rules import DEFAULT_RULES, Context, Decline, Rule, Step
from .rules.base import function_is, method_is, module_is
from .tracing import node_name, output_leaves, propagate_shapes, trace

__all__ = ["MODES", "Analysis", "Plan", "analyse", "plan"]

#: "window": one cell per canonical-size window; "cam": a class-activation map
MODES = ("window", "cam")


@dataclass
class Plan:
    """What conversion changes, keeps and refuses, layer by layer; printable."""

    name: str
    mode: str
    input_size: tuple[int, int]
    input_shape: tuple[int, ...]
    steps: list[Step] = field(default_factory=list)
    declines: list[Decline] = field(default_factory=list)
    left_alone: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    already_convolutional: bool = False
    #: the trunk layers through which a cell reads beyond its window (padding, a ceil_mode pool's
    #: partial window), which a note names
    reads_beyond: list[str] = field(default_factory=list)

    @property
    def convertible(self) -> bool:
        return not self.declines

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.changes_graph]

    def __str__(self) -> str:
        size = "x".join(map(str, self.input_shape[1:]))
        lines = [f"{self.name}: plan for mode='{self.mode}' at input {size}"]
        if self.changes:
            lines.append("changes:")
            lines += [f"  {s.layer}: {s.action}" for s in self.changes]
        kept = [
            s for s in self.steps if not s.changes_graph and not isinstance(s.layout, NotTensor)
        ]
        if kept:
            lines.append("kept (already per position):")
            lines += [f"  {s.layer}: {s.action}" for s in kept]
        if self.left_alone:
            lines.append("left alone:")
            lines += [f"  {layer}: {why}" for layer, why in self.left_alone]
        if self.declines:
            lines.append("cannot convert:")
            lines += [f"  {d.layer}: {d.reason}" for d in self.declines]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class Analysis:
    """A plan together with what applying it needs: the traced graph and its context."""

    plan: Plan
    context: Context
    input_channels: int
    vector_input: bool


def _weight_tensor(gm: fx.GraphModule, node: Any) -> torch.Tensor | None:
    """The parameter a weight argument comes from, also when the model computes the weight from
    it in forward (weight standardisation: ``F.conv2d(x, standardise(self.weight))``)."""
    queue = [node] if isinstance(node, fx.Node) else []
    seen: set[fx.Node] = set()
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        if current.op == "get_attr":
            owner, _, name = str(current.target).rpartition(".")
            value = getattr(gm.get_submodule(owner), name, None)
            if isinstance(value, torch.Tensor) and value.dim() >= 2:
                return value
        queue.extend(current.all_input_nodes)
    return None


def _input_features(gm: fx.GraphModule) -> tuple[bool, int, str]:
    """(vector input?, channels or features, the layer they were read from), from the first
    convolution or Linear of the graph (inside a module that the trace kept whole, too)."""
    for node in gm.graph.nodes:
        if node.op == "call_module":  # a layer, or a module kept whole: its first layer
            for inner, module in gm.get_submodule(str(node.target)).named_modules():
                where = ".".join(part for part in (str(node.target), inner) if part)
                if isinstance(module, nn.Conv2d):
                    return False, module.in_channels, where
                if isinstance(module, nn.Linear):
                    return True, module.in_features, where
        if node.op == "call_function" and node.target in (
            torch.nn.functional.conv2d,
            torch.conv2d,
            torch.nn.functional.linear,
        ):
            tensor = _weight_tensor(gm, node.args[1])
            if tensor is not None:
                is_linear = node.target is torch.nn.functional.linear
                return is_linear, int(tensor.shape[1]), node_name(node)
    raise TraceError("cannot tell the input's channels: the model has no Conv2d and no Linear")


def permutation(node: fx.Node, rank: int) -> tuple[int, ...] | None:
    """The axes a permute or transpose node puts in each place, or None for other nodes."""
    if method_is(node, "permute") or function_is(node, torch.permute):
        dims = node.args[1] if len(node.args) == 2 else node.args[1:]
        if isinstance(dims, (list, tuple)) and all(isinstance(d, int) for d in dims):
            return tuple(d % rank for d in dims)
        return None
    if method_is(node, "transpose") or function_is(node, torch.transpose):
        first, second = node.args[1], node.args[2]
        if not (isinstance(first, int) and isinstance(second, int)):
            return None
        order = list(range(rank))
        order[first % rank], order[second % rank] = order[second % rank], order[first % rank]
        return tuple(order)
    return None


def axis_orders(
    gm: fx.GraphModule, input_shape: tuple[int, ...], shapes: dict[fx.Node, tuple[int, ...]]
) -> dict[fx.Node, tuple[int, ...]] | None:
    """For every 4-D tensor whose axes the model's own shapes tell apart, its order (as in
    :class:`.layouts.Trunk`): run the model (on meta tensors) once with a larger batch, once
    twice as high and once twice as wide; the axis that follows the batch is the batch axis,
    those that follow the height and width are H and W, and the one that follows none holds
    the channels. Tensors whose axes are ambiguous (a pooled 1x1 map, attention windows) are
    left out. None when the model does not run at those sizes (it is built for one size)."""
    batch, channels, height, width = input_shape
    probes = [(batch + 3, channels, height, width), (batch, channels, 2 * height, width)]
    probes.append((batch, channels, height, 2 * width))
    try:
        varied = [propagate_shapes(gm, probe, "", fake_fallback=False) for probe in probes]
    except TraceError:
        return None
    orders = {}
    for node, shape in shapes.items():
        others = [other.get(node) for other in varied]
        if len(shape) != 4 or any(other is None or len(other) != 4 for other in others):
            continue
        follows = [
            [axis for axis in range(4) if other[axis] != shape[axis]]  # type: ignore[index]
            for other in others
        ]
        if any(len(moved) != 1 for moved in follows):
            continue
        batch_axis, height_axis, width_axis = (moved[0] for moved in follows)
        rest = set(range(4)) - {batch_axis, height_axis, width_axis}
        if len(rest) != 1:
            continue
        roles = {batch_axis: 0, rest.pop(): 1, height_axis: 2, width_axis: 3}
        orders[node] = tuple(roles[axis] for axis in range(4))
    return orders


def _trunk_order(node: fx.Node, ctx: Context) -> tuple[int, ...] | None:
    """How a 4-D trunk tensor's axes relate to NCHW (see :class:`.layouts.Trunk`): from the
    model's shapes where they tell, else by following permutes from a known NCHW tensor."""
    shape = ctx.shape(node)
    if shape is None or len(shape) != 4:
        return None
    if node in ctx.orders:
        return ctx.orders[node]
    if node.op == "call_module" and isinstance(
        ctx.module(node),
        (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d),
    ):
        return NCHW
    tensor_inputs = [a for a in node.all_input_nodes if ctx.shape(a) and a.op != "get_attr"]
    source = ctx.layout(tensor_inputs[0]) if tensor_inputs else None
    order = source.order if isinstance(source, Trunk) else None
    if not tensor_inputs or len(ctx.shape(tensor_inputs[0]) or ()) != 4:
        return None
    moved = permutation(node, 4)
    if moved is not None:
        return None if order is None else tuple(order[axis] for axis in moved)
    return order


class ClassifierWalk:
    """One pass over the graph that assigns layouts and collects steps and declines.

    ``entries[node]`` is the set of classifier entries (flattens, global pools) that a node on
    the classifier path derives from; when such a node meets the trunk again, those entries were
    a gate, not the classifier, and everything derived from them goes back to the trunk.
    """

    def __init__(self, ctx: Context, rules: tuple[Rule, ...], vector_input: bool) -> None:
        self.ctx = ctx
        self.rules = rules
        self.vector_input = vector_input
        self.entries: dict[fx.Node, frozenset[fx.Node]] = {}
        self.steps: dict[fx.Node, Step] = {}
        self.declines: dict[fx.Node, Decline] = {}
        self.gates: list[fx.Node] = []

    def run(self) -> None:
        ctx = self.ctx
        for node in ctx.gm.graph.nodes:
            if node.op == "placeholder":
                ctx.layouts[node] = Vec() if self.vector_input else Trunk(NCHW)
                if self.vector_input:
                    self.entries[node] = frozenset({node})
            elif node.op == "get_attr":
                ctx.layouts[node] = Trunk(None)
            elif node.op != "output":
                self.visit(node)

    def _meets_trunk(self, node: fx.Node) -> bool:
        ctx = self.ctx
        trunk = [
            a
            for a in node.all_input_nodes
            if isinstance(ctx.layout(a), Trunk) and a.op != "get_attr" and ctx.shape(a)
        ]
        return bool(ctx.classifier_inputs(node) and trunk)

    def _to_trunk(self, node: fx.Node) -> None:
        """The classifier entries feeding ``node`` are gates: their branches stay as they are."""
        ctx = self.ctx
        gate_entries = frozenset().union(*(self.entries[a] for a in ctx.classifier_inputs(node)))
        self.gates.extend(sorted(gate_entries, key=lambda n: n.name))
        for visited in list(self.entries):
            if self.entries[visited] & gate_entries:
                del self.entries[visited]
                self.steps.pop(visited, None)
                self.declines.pop(visited, None)
                ctx.layouts[visited] = Trunk(_trunk_order(visited, ctx))

    def visit(self, node: fx.Node) -> None:
        ctx = self.ctx
        if self._meets_trunk(node):
            self._to_trunk(node)
        inputs = ctx.classifier_inputs(node)
        for rule in self.rules:
            if rule.match(node, ctx):
                result = rule.check(node, ctx)
                break
        else:
            if inputs:
                self.declines[node] = Decline(
                    "none",
                    node,
                    node_name(node),
                    "acts on the classifier features and has no per-position equivalent",
                )
                ctx.layouts[node] = ctx.layouts[inputs[0]]
                self.entries[node] = frozenset().union(*(self.entries[a] for a in inputs))
            else:
                ctx.layouts[node] = (
                    Trunk(_trunk_order(node, ctx)) if ctx.shape(node) else NotTensor()
                )
            return
        if isinstance(result, Decline):
            self.declines[node] = result
            ctx.layouts[node] = ctx.layouts[inputs[0]] if inputs else Trunk(_trunk_order(node, ctx))
        else:
            self.steps[node] = result
            ctx.layouts[node] = result.layout
        if inputs:
            self.entries[node] = frozenset().union(*(self.entries[a] for a in inputs))
        elif on_classifier_path(ctx.layouts[node]):
            self.entries[node] = frozenset({node})


def _why_not_features(source: fx.Node, ctx: Context) -> str:
    """Why the input of an unconverted Linear is not a map's features: the construct it comes
    from, found by walking back through the per-image layers (dropout, norms, activations)."""
    node = source
    for _ in range(16):
        inputs = [a for a in node.all_input_nodes if ctx.shape(a) and a.op != "get_attr"]
        parent = inputs[0] if inputs else None
        rank = len(ctx.shape(parent) or ())
        if node.target is operator.getitem and rank == 3:
            return (
                f"its input is one token of a sequence ({node_name(node)}, x[:, i] of a "
                "tokens tensor): the model classifies a token, as transformers do, not a "
                "convolutional feature map"
            )
        if (method_is(node, "mean") or function_is(node, torch.mean)) and rank == 3:
            return (
                f"its input is the mean of a sequence of tokens ({node_name(node)}): the model "
                "mixes tokens across the whole image (attention or token-mixing layers), so its "
                "tokens are not per-position features"
            )
        if parent is None or len(ctx.shape(node) or ()) != 2 or rank != 2:
            break
        node = parent
    return (
        f"its input comes from {node_name(source)} ({len(ctx.shape(source) or ())}-D), not "
        "from a flattened or pooled convolutional feature map"
    )


def _unconverted_linears(output: fx.Node, ctx: Context) -> list[tuple[str, str]]:
    """Linears that compute a 2-D model output but were not reached by any rule."""
    found: list[tuple[str, str]] = []
    seen: set[fx.Node] = set()
    stack = [leaf for leaf in output_leaves(output.args[0]) if isinstance(leaf, fx.Node)]
    while stack:
        node = stack.pop()
        shape = ctx.shape(node)
        if node in seen or not shape or len(shape) > 2:
            continue
        seen.add(node)
        is_linear = module_is(node, ctx, nn.Linear) or function_is(node, torch.nn.functional.linear)
        if is_linear and isinstance(ctx.layout(node), Trunk):
            source = node.args[0]
            assert isinstance(source, fx.Node)
            found.append((node_name(node), _why_not_features(source, ctx)))
        stack.extend(node.all_input_nodes)
    return sorted(found)


def _left_alone(ctx: Context, unconverted: dict[str, str]) -> list[tuple[str, str]]:
    """Linears off the classifier path, grouped by why they stay."""
    others: dict[str, list[str]] = {}
    for node in ctx.gm.graph.nodes:
        if (
            (module_is(node, ctx, nn.Linear) or function_is(node, torch.nn.functional.linear))
            and isinstance(ctx.layout(node), Trunk)
            and node_name(node) not in unconverted
        ):
            shape = ctx.shape(node) or ()
            why = (
                "off the classifier path (a gate whose pooling is not the classifier's)"
                if len(shape) == 2
                else f"off the classifier path (acts on a {len(shape)}-D "
                "tensor, already per position)"
            )
            others.setdefault(why, []).append(node_name(node))
    left: list[tuple[str, str]] = []
    for why, layers in others.items():
        if len(layers) <= 4:
            left += [(layer, why) for layer in layers]
        else:
            left.append((f"{layers[0]} and {len(layers) - 1} more Linears", why))
    return left


def _input_spec(
    gm: fx.GraphModule,
    model: nn.Module,
    input_size: tuple[int, int],
    input_channels: int | None,
) -> tuple[bool, int, tuple[int, ...], str]:
    """(vector input?, channels, the input shape traced, the hint a failed trace gives): the
    channels given, declared by the model, or read from its first layer."""
    guessed_vector, guessed, layer = _input_features(gm)
    input_channels = input_channels or declared_channels(model)
    vector_input = guessed_vector and input_channels is None  # given channels: images
    channels = input_channels or guessed
    input_shape = (2, channels) if vector_input else (2, channels, *input_size)
    size = "x".join(str(d) for d in input_size)
    if input_channels is None and not vector_input:
        hint = (
            f"The {channels} input channels were read from its first layer, {layer}; if the "
            "model takes another number, pass --input-channels; if it needs "
            f"another size than {size}, pass --input-size."
        )
    else:
        hint = f"If it needs another size than {size}, pass --input-size."
    return vector_input, channels, input_shape, hint


def _decline_feature_outputs(the_plan: Plan, leaves: list[fx.Node], ctx: Context) -> None:
    """Decline the first output that returns classifier features other than vectors or maps
    (unless the plan already declines)."""
    for leaf in leaves:
        layout = ctx.layout(leaf)
        if (
            on_classifier_path(layout)
            and not isinstance(layout, (Vec, Map))
            and not the_plan.declines
        ):
            the_plan.declines.append(
                Decline(
                    "output",
                    leaf,
                    node_name(leaf),
                    "returns classifier features that are not vectors",
                )
            )


def _check_classifier_found(
    the_plan: Plan,
    output: fx.Node,
    leaves: list[fx.Node],
    linears: list[tuple[str, str]],
    ctx: Context,
) -> None:
    """Where no output is a class vector or map: note a model that is already fully
    convolutional, or decline one whose 2-D output no feature map feeds."""
    if any(isinstance(ctx.layout(leaf), (Vec, Map)) for leaf in leaves):
        return
    if not linears and not any(len(ctx.shape(leaf) or ()) == 2 for leaf in leaves):
        the_plan.already_convolutional = True
        the_plan.notes.append("already fully convolutional: nothing to convert")
    elif not the_plan.declines:
        the_plan.declines.append(
            Decline(
                "output",
                output,
                "output",
                "no flattened or pooled convolutional feature map feeds the 2-D output",
            )
        )


def _fixed_size_decline(gm: fx.GraphModule, input_size: tuple[int, int]) -> Decline:
    """The decline of a model that runs at ``input_size`` only: the likely cause of the
    others."""
    size = "x".join(str(d) for d in input_size)
    return Decline(
        "input",
        next(n for n in gm.graph.nodes if n.op == "placeholder"),
        "input",
        f"the model runs at {size} only (its maps cannot grow): build it for other "
        "sizes (timm: strict_img_size=False), or name it as timm:NAME, which does",
    )


def beyond_note(layers: list[str]) -> str:
    """The plan's note on the trunk layers through which a cell reads beyond its window."""
    return f"{padding_note(layers)} (`fc2conv inspect` measures the region a cell reads)"


def _add_notes(
    the_plan: Plan, walk: ClassifierWalk, gm: fx.GraphModule, vector_input: bool
) -> None:
    """Notes on gates, modules kept whole, layers that read beyond a cell's window, and a
    classifier that has no Linear to convert."""
    if walk.gates:
        the_plan.notes.append(
            f"{len(walk.gates)} pooling(s) feed gates back into the trunk "
            "(e.g. squeeze-and-excitation) and stay global"
        )
    whole = gm.meta.get("kept_whole", [])
    if whole:
        shown = ", ".join(whole[:3]) + (f" and {len(whole) - 3} more" if len(whole) > 3 else "")
        the_plan.notes.append(
            f"torch.fx cannot trace into {shown}: kept whole, like a layer (no rule sees inside)"
        )
    beyond = reads_beyond_window(gm, walk.ctx.shapes)
    if beyond and the_plan.mode == "window" and not vector_input:
        the_plan.reads_beyond = beyond
        the_plan.notes.append(beyond_note(beyond))
    if (
        not any(s.rule.name == "linear" for s in the_plan.steps)
        and not the_plan.declines
        and not the_plan.already_convolutional
    ):
        the_plan.notes.append(
            "no Linear on the classifier path: the classifier is already "
            "convolutional; only its pooling changes"
        )


def analyse(
    model: nn.Module,
    input_size: tuple[int, int],
    mode: str,
    name: str,
    rules: tuple[Rule, ...] = DEFAULT_RULES,
    input_channels: int | None = None,
) -> Analysis:
    """Trace ``model``, walk its graph with ``rules`` and return the plan with its context.
    ``input_channels`` None: read from the model's first convolution (or Linear)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    gm = trace(model, name)
    vector_input, channels, input_shape, hint = _input_spec(gm, model, input_size, input_channels)
    shapes = propagate_shapes(gm, input_shape, name, hint)
    orders = {} if vector_input else axis_orders(gm, input_shape, shapes)
    ctx = Context(gm, shapes, {}, mode, name, orders or {})
    walk = ClassifierWalk(ctx, rules, vector_input)
    walk.run()
    the_plan = Plan(
        name,
        mode,
        (1, 1) if vector_input else (int(input_size[0]), int(input_size[1])),
        input_shape,
        list(walk.steps.values()),
        list(walk.declines.values()),
    )
    output = next(n for n in gm.graph.nodes if n.op == "output")
    leaves = [leaf for leaf in output_leaves(output.args[0]) if isinstance(leaf, fx.Node)]
    _decline_feature_outputs(the_plan, leaves, ctx)
    linears = _unconverted_linears(output, ctx)
    the_plan.declines += [Decline("linear", output, layer, why) for layer, why in linears]
    _check_classifier_found(the_plan, output, leaves, linears, ctx)
    if orders is None and the_plan.declines:  # the likely cause of the rest: said first
        the_plan.declines.insert(0, _fixed_size_decline(gm, input_size))
    the_plan.left_alone = _left_alone(ctx, dict(linears))
    _add_notes(the_plan, walk, gm, vector_input)
    return Analysis(the_plan, ctx, channels, vector_input)


def plan(
    model: nn.Module,
    input_size: tuple[int, int] = (224, 224),
    *,
    mode: str = "window",
    name: str | None = None,
    rules: tuple[Rule, ...] = DEFAULT_RULES,
    input_channels: int | None = None,
) -> Plan:
    """What :func:`fc2conv.convert` would change, keep and refuse; printable."""
    size = (int(input_size[0]), int(input_size[1]))
    return analyse(model, size, mode, name or type(model).__name__, rules, input_channels).plan
