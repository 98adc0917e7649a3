"""Run the rewrite rules over a traced classifier and build the fully convolutional model.

The walk gives every node a layout (see :mod:`fc2conv.rules.base`). Nodes that read only trunk
tensors stay as they are, except where a rule finds the classifier's entry (a flatten or a global
pool of an NCHW map) or an adaptive pool to fix. From there on, every node must have a rule that
makes it per-position; if one does not, the model is refused with every reason at once. A pooled
branch that flows back into the trunk (a squeeze-and-excitation gate) is not the classifier: it is
left alone.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from .errors import InputSizeError, TraceError, UnsupportedModelError
from .geometry import Geometry, measure_geometry
from .rules import DEFAULT_RULES, Context, Decline, Rule, Step
from .rules.base import Map, NotTensor, Trunk, Vec, function_is, is_head, method_is, module_is
from .tracing import ShapeProbe, fake_run, node_name, output_leaves, propagate_shapes, trace

__all__ = ["FullyConvolutionalModel", "Plan", "convert", "plan"]

HEADS = ("window", "cam")


@dataclass
class Plan:
    """What conversion changes, keeps and refuses, layer by layer."""

    name: str
    head: str
    input_size: tuple[int, int]
    input_shape: tuple[int, ...]
    steps: list[Step] = field(default_factory=list)
    declines: list[Decline] = field(default_factory=list)
    left_alone: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    already_convolutional: bool = False

    @property
    def convertible(self) -> bool:
        return not self.declines

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.changes_graph]

    def __str__(self) -> str:
        size = "x".join(map(str, self.input_shape[1:]))
        lines = [f"{self.name}: plan for head='{self.head}' at input {size}"]
        if self.changes:
            lines.append("changes:")
            lines += [f"  {s.layer}: {s.action}" for s in self.changes]
        kept = [s for s in self.steps if not s.changes_graph and s.rule != "shape-query"]
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


class FullyConvolutionalModel(nn.Module):
    """A converted classifier: takes N×C×H×W images of any size ≥ ``geometry.min_size``.

    At the canonical size its output equals the original logits (``head="window"``: one cell;
    ``head="cam"``: a map whose spatial mean is the logits); larger inputs give class maps.
    """

    def __init__(
        self,
        graph_module: fx.GraphModule,
        geometry: Geometry,
        plan: Plan,
        input_channels: int,
        vector_input: bool,
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.geometry = geometry
        self.plan = plan
        self.name = plan.name
        self.head = plan.head
        self.input_channels = input_channels
        self.vector_input = vector_input
        self.metadata: dict[str, Any] = {}

    def forward(self, images: torch.Tensor) -> Any:
        if images.dim() != 4 or images.shape[1] != self.input_channels:
            raise InputSizeError(
                f"{self.name}: expected images of shape N x {self.input_channels} x H x W, "
                f"got {tuple(images.shape)}"
            )
        self.geometry.check_input(int(images.shape[2]), int(images.shape[3]), self.name)
        return self.graph_module(images)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self.geometry.output_size(height, width, self.name)


def _first_layer(gm: fx.GraphModule) -> tuple[str, int]:
    """('image', channels) or ('vector', features) from the first conv or Linear of the graph."""
    for node in gm.graph.nodes:
        if node.op == "call_module":
            module = gm.get_submodule(str(node.target))
            if isinstance(module, nn.Conv2d):
                return "image", module.in_channels
            if isinstance(module, nn.Linear):
                return "vector", module.in_features
        if node.op == "call_function" and node.target in (
            torch.nn.functional.conv2d,
            torch.conv2d,
            torch.nn.functional.linear,
        ):
            weight = node.args[1]
            if isinstance(weight, fx.Node) and weight.op == "get_attr":
                tensor = gm.get_parameter(str(weight.target))
                if node.target is torch.nn.functional.linear:
                    return "vector", int(tensor.shape[1])
                return "image", int(tensor.shape[1])
    raise TraceError("cannot tell the input's channels: the model has no Conv2d and no Linear")


def _infer_order(node: fx.Node, ctx: Context) -> str | None:
    """Memory order of a trunk tensor: NCHW, NHWC or unknown."""
    shape = ctx.shape(node)
    if shape is None or len(shape) != 4:
        first = next((ctx.layout(a) for a in node.all_input_nodes if ctx.shape(a)), None)
        return first.order if isinstance(first, Trunk) else None
    if node.op == "call_module" and isinstance(
        ctx.module(node),
        (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d),
    ):
        return "nchw"
    tensor_inputs = [a for a in node.all_input_nodes if ctx.shape(a) and a.op != "get_attr"]
    source = ctx.layout(tensor_inputs[0]) if tensor_inputs else None
    order = source.order if isinstance(source, Trunk) else None
    if method_is(node, "permute", "transpose") or function_is(node, torch.permute, torch.transpose):
        dims = tuple(a for a in node.args[1:] if isinstance(a, int))
        if len(node.args) == 2 and isinstance(node.args[1], (list, tuple)):
            dims = tuple(node.args[1])
        if order == "nchw" and dims == (0, 2, 3, 1):
            return "nhwc"
        if order == "nhwc" and dims == (0, 3, 1, 2):
            return "nchw"
        return None
    return order


class _Walk:
    """One pass over the graph that assigns layouts and collects steps and declines."""

    def __init__(self, ctx: Context, rules: tuple[Rule, ...], vector_input: bool) -> None:
        self.ctx = ctx
        self.rules = rules
        self.vector_input = vector_input
        self.roots: dict[fx.Node, frozenset[fx.Node]] = {}
        self.steps: dict[fx.Node, Step] = {}
        self.declines: dict[fx.Node, Decline] = {}
        self.gates: list[fx.Node] = []

    def run(self) -> None:
        ctx = self.ctx
        for node in ctx.gm.graph.nodes:
            if node.op == "placeholder":
                ctx.layouts[node] = Vec() if self.vector_input else Trunk("nchw")
                if self.vector_input:
                    self.roots[node] = frozenset({node})
            elif node.op == "get_attr":
                ctx.layouts[node] = Trunk(None)
            elif node.op != "output":
                self.visit(node)

    def _mixes(self, node: fx.Node) -> bool:
        ctx = self.ctx
        heads = ctx.head_inputs(node)
        trunk = [
            a
            for a in node.all_input_nodes
            if isinstance(ctx.layout(a), Trunk) and a.op != "get_attr" and ctx.shape(a)
        ]
        return bool(heads and trunk)

    def _demote(self, node: fx.Node) -> None:
        """The classifier entries feeding ``node`` are gates: their branches stay as they are."""
        ctx = self.ctx
        gate_roots = frozenset().union(*(self.roots[a] for a in ctx.head_inputs(node)))
        self.gates.extend(sorted(gate_roots, key=lambda n: n.name))
        for visited in list(self.roots):
            if self.roots[visited] & gate_roots:
                del self.roots[visited]
                self.steps.pop(visited, None)
                self.declines.pop(visited, None)
                ctx.layouts[visited] = Trunk(_infer_order(visited, ctx))

    def visit(self, node: fx.Node) -> None:
        ctx = self.ctx
        if self._mixes(node):
            self._demote(node)
        heads = ctx.head_inputs(node)
        for rule in self.rules:
            if rule.match(node, ctx):
                result = rule.check(node, ctx)
                break
        else:
            if heads:
                self.declines[node] = Decline(
                    "none",
                    node,
                    node_name(node),
                    "acts on the classifier features and has no per-position equivalent",
                )
                ctx.layouts[node] = ctx.layouts[heads[0]]
                self.roots[node] = frozenset().union(*(self.roots[a] for a in heads))
            else:
                ctx.layouts[node] = (
                    Trunk(_infer_order(node, ctx)) if ctx.shape(node) else NotTensor()
                )
            return
        if isinstance(result, Decline):
            self.declines[node] = result
            ctx.layouts[node] = ctx.layouts[heads[0]] if heads else Trunk(_infer_order(node, ctx))
        else:
            self.steps[node] = result
            ctx.layouts[node] = result.layout
        if heads:
            self.roots[node] = frozenset().union(*(self.roots[a] for a in heads))
        elif is_head(ctx.layouts[node]):
            self.roots[node] = frozenset({node})


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
            parent = source.all_input_nodes[0] if source.all_input_nodes else None
            if source.target is operator.getitem and len(ctx.shape(parent) or ()) == 3:
                why = (
                    "its input is one token of a sequence (x[:, 0]): the model classifies a "
                    "token, as transformers do, not a convolutional feature map"
                )
            else:
                why = (
                    f"its input comes from {node_name(source)} "
                    f"({len(ctx.shape(source) or ())}-D), not from a flattened or pooled "
                    "convolutional feature map"
                )
            found.append((node_name(node), why))
        stack.extend(node.all_input_nodes)
    return sorted(found)


def _analyse(
    model: nn.Module,
    input_size: tuple[int, int],
    head: str,
    name: str,
    rules: tuple[Rule, ...] = DEFAULT_RULES,
) -> tuple[Plan, Context, _Walk, bool, int]:
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, not {head!r}")
    gm = trace(model, name)
    kind, channels = _first_layer(gm)
    vector_input = kind == "vector"
    input_shape = (2, channels) if vector_input else (2, channels, *input_size)
    shapes = propagate_shapes(gm, input_shape, name)
    ctx = Context(gm, shapes, {}, head, name)
    walk = _Walk(ctx, rules, vector_input)
    walk.run()
    plan = Plan(
        name,
        head,
        (1, 1) if vector_input else tuple(input_size),  # type: ignore[arg-type]
        input_shape,
        list(walk.steps.values()),
        list(walk.declines.values()),
    )
    output = next(n for n in gm.graph.nodes if n.op == "output")
    leaves = [leaf for leaf in output_leaves(output.args[0]) if isinstance(leaf, fx.Node)]
    layouts = [ctx.layout(leaf) for leaf in leaves]
    for leaf, layout in zip(leaves, layouts, strict=True):
        if is_head(layout) and not isinstance(layout, (Vec, Map)) and not plan.declines:
            plan.declines.append(
                Decline(
                    "output",
                    leaf,
                    node_name(leaf),
                    "returns classifier features that are not vectors",
                )
            )
    linears = _unconverted_linears(output, ctx)
    plan.declines += [Decline("linear", output, layer, why) for layer, why in linears]
    if not any(isinstance(layout, (Vec, Map)) for layout in layouts):
        if not linears and not any(len(ctx.shape(leaf) or ()) == 2 for leaf in leaves):
            plan.already_convolutional = True
            plan.notes.append("already fully convolutional: nothing to convert")
        elif not plan.declines:
            plan.declines.append(
                Decline(
                    "output",
                    output,
                    "output",
                    "no flattened or pooled convolutional feature map feeds the 2-D output",
                )
            )
    unconverted = dict(linears)
    others: dict[str, list[str]] = {}
    for node in ctx.gm.graph.nodes:
        if (
            (module_is(node, ctx, nn.Linear) or function_is(node, torch.nn.functional.linear))
            and isinstance(ctx.layout(node), Trunk)
            and node_name(node) not in unconverted
        ):
            shape = ctx.shape(node) or ()
            why = (
                "off the classifier path (a gate whose pooling is not the head's)"
                if len(shape) == 2
                else f"off the classifier path (acts on a {len(shape)}-D "
                "tensor, already per position)"
            )
            others.setdefault(why, []).append(node_name(node))
    for why, layers in others.items():
        if len(layers) <= 4:
            plan.left_alone += [(layer, why) for layer in layers]
        else:
            plan.left_alone.append((f"{layers[0]} and {len(layers) - 1} more Linears", why))
    if walk.gates:
        plan.notes.append(
            f"{len(walk.gates)} pooling(s) feed gates back into the trunk "
            "(e.g. squeeze-and-excitation) and stay global"
        )
    if (
        not any(s.rule == "linear" for s in plan.steps)
        and not plan.declines
        and not plan.already_convolutional
    ):
        plan.notes.append(
            "no Linear on the classifier path: the classifier is already "
            "convolutional; only its pooling changes"
        )
    return plan, ctx, walk, vector_input, channels


def plan(
    model: nn.Module,
    input_size: tuple[int, int] = (224, 224),
    *,
    head: str = "window",
    name: str | None = None,
) -> Plan:
    """What :func:`convert` would change, keep and refuse; printable."""
    return _analyse(model, tuple(input_size), head, name or type(model).__name__)[0]  # type: ignore[arg-type]


def _check_shape_queries(ctx: Context, walk: _Walk) -> None:
    """Shape queries of the features that survive the rewrite must only read the batch size."""
    for node, step in walk.steps.items():
        if step.rule != "shape-query" or node.graph is not ctx.gm.graph or not node.users:
            continue
        bad: object
        if method_is(node, "dim"):
            bad = True
        elif method_is(node, "size") and len(node.args) > 1:
            bad = node.args[1] != 0
        else:
            bad = not all(user.op == "call_function" and user.args[1] == 0 for user in node.users)
        if bad:
            raise UnsupportedModelError(
                f"{ctx.name}: cannot convert exactly",
                [
                    (
                        node_name(node),
                        "reads the shape of the classifier features, which changes "
                        "when they become maps",
                    )
                ],
            )


def convert(
    model: nn.Module,
    input_size: tuple[int, int] = (224, 224),
    *,
    head: str = "window",
    inplace: bool = False,
    name: str | None = None,
) -> FullyConvolutionalModel:
    """Convert a classifier into an exactly equivalent fully convolutional model.

    ``input_size`` is the canonical (height, width) the classifier was built for. The result shares
    weights with ``model`` when ``inplace`` is true, and with a deep copy of it otherwise; ``model``
    itself is never modified. Raises UnsupportedModelError listing every layer in the way.
    """
    name = name or type(model).__name__
    if not inplace:
        model = copy.deepcopy(model)
    the_plan, ctx, walk, vector_input, channels = _analyse(model, tuple(input_size), head, name)  # type: ignore[arg-type]
    if the_plan.declines:
        raise UnsupportedModelError(
            f"{name}: cannot convert exactly; in the way:",
            [(d.layer, d.reason) for d in the_plan.declines],
        )
    by_name = {rule.name: rule for rule in DEFAULT_RULES}
    for step in the_plan.steps:
        if step.changes_graph:
            by_name[step.rule].rewrite(step, ctx)
    graph = ctx.gm.graph
    graph.eliminate_dead_code()
    _check_shape_queries(ctx, walk)
    graph.lint()
    ctx.gm.delete_all_unused_submodules()
    ctx.gm.recompile()
    ctx.gm.eval()
    output = next(n for n in graph.nodes if n.op == "output")
    leaves = output_leaves(output.args[0])
    map_index = next(
        (i for i, leaf in enumerate(leaves) if isinstance(ctx.layouts.get(leaf), (Vec, Map))),
        next((i for i, leaf in enumerate(leaves) if len(ctx.shape(leaf) or ()) == 4), 0),
    )

    canonical = (1, 1) if vector_input else tuple(input_size)
    probe = ShapeProbe(ctx.gm)
    try:
        first = probe((1, channels, *canonical))
    except Exception:  # tensors the meta device cannot stand in for: use fake tensors
        probe = functools.partial(fake_run, ctx.gm)  # type: ignore[assignment]
        first = None

    def map_size(height: int, width: int) -> tuple[int, int] | None:
        if first is not None and (height, width) == canonical:
            result = output_leaves(first)
        else:
            with contextlib.redirect_stderr(io.StringIO()):  # fx prints the frames that fail
                try:
                    result = output_leaves(probe((1, channels, height, width)))
                except Exception:
                    return None
        return int(result[map_index].shape[-2]), int(result[map_index].shape[-1])

    mode = "cam" if the_plan.already_convolutional else head  # window needs a 1x1 canonical map
    geometry = measure_geometry(map_size, canonical, mode, name)  # type: ignore[arg-type]
    converted = FullyConvolutionalModel(ctx.gm, geometry, the_plan, channels, vector_input)
    return converted.eval()
