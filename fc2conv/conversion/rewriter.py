"""Apply a plan: every step's rule rewrites its node, then the geometry is measured."""

from __future__ import annotations

import contextlib
import copy
import functools
import io
from dataclasses import replace

from torch import fx, nn

from ..errors import UnsupportedModelError
from ..geometry import Geometry, measure_geometry
from .declared import declared_preprocessing
from .layouts import Map, Vec
from .model import FullyConvolutionalModel
from .outputs import describe_outputs
from .planner import Analysis, Plan, analyse, beyond_note
from .refine import refine_stride
from .rules import DEFAULT_RULES, Rule
from .tracing import ShapeProbe, fake_run, output_leaves

__all__ = ["convert"]


def _map_output(analysis: Analysis, graph: fx.Graph) -> int:
    """Index of the output leaf that holds the class map (the first on the classifier path)."""
    ctx = analysis.context
    output = next(n for n in graph.nodes if n.op == "output")
    leaves = output_leaves(output.args[0])
    return next(
        (i for i, leaf in enumerate(leaves) if isinstance(ctx.layouts.get(leaf), (Vec, Map))),
        next((i for i, leaf in enumerate(leaves) if len(ctx.shape(leaf) or ()) == 4), 0),
    )


def _apply(analysis: Analysis) -> fx.GraphModule:
    ctx = analysis.context
    for step in analysis.plan.steps:
        if step.changes_graph:
            step.rule.rewrite(step, ctx)
    graph = ctx.gm.graph
    graph.eliminate_dead_code()
    for step in analysis.plan.steps:
        step.rule.finish(step, ctx)
    graph.lint()
    ctx.gm.delete_all_unused_submodules()
    ctx.gm.recompile()
    return ctx.gm.eval()


def _measure(
    gm: fx.GraphModule,
    channels: int,
    canonical: tuple[int, int],
    map_index: int,
    mode: str,
    name: str,
    refined: bool = False,
) -> Geometry:
    """The geometry of ``gm``'s class map, measured on meta (or fake) tensors."""
    probe = ShapeProbe(gm)
    try:
        first = probe((1, channels, *canonical))
    except Exception:  # tensors the meta device cannot stand in for: use fake tensors
        probe = functools.partial(fake_run, gm)  # type: ignore[assignment]
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

    return measure_geometry(map_size, canonical, mode, name, refined)


def _exact_borders(gm: fx.GraphModule, shape: tuple[int, ...], the_plan: Plan) -> None:
    """Make the cells at ceil_mode borders exact (:mod:`.borders`) and say so in the plan: the
    pools made exact no longer read beyond a cell's window. Or say why not."""
    import torch

    from ..partial_windows import border_note
    from .borders import exact_borders

    borders = exact_borders(gm, torch.zeros(shape))
    if not borders.pools:
        return
    if not borders.exact:
        the_plan.notes.append(border_note(borders, False))
        return
    still = [layer for layer in the_plan.reads_beyond if layer not in borders.pools]
    if the_plan.reads_beyond:  # the planner's note naming them: now of those that still do
        where = the_plan.notes.index(beyond_note(the_plan.reads_beyond))
        the_plan.notes[where : where + 1] = [beyond_note(still)] if still else []
    the_plan.reads_beyond = still
    the_plan.notes.append(border_note(borders, not still))


def convert(
    model: nn.Module,
    input_size: tuple[int, int] = (224, 224),
    *,
    mode: str = "window",
    inplace: bool = False,
    name: str | None = None,
    rules: tuple[Rule, ...] = DEFAULT_RULES,
    input_channels: int | None = None,
    stride: int | None = None,
) -> FullyConvolutionalModel:
    """Convert a classifier into an exactly equivalent fully convolutional model.

    ``input_size`` is the canonical (height, width) the classifier was built for. ``mode`` is
    "window" (one cell per canonical-size window) or "cam" (a class-activation map; affine
    classifiers only). The result shares weights with ``model`` when ``inplace`` is true, and with
    a deep copy of it otherwise; ``model`` itself is never modified. ``rules`` are tried in order
    on every node (see :mod:`fc2conv.conversion.rules`). ``input_channels`` is the number of
    channels of its input images (default: read from its first convolution). ``stride``: a
    finer output stride than the model's own (a divisor of it, e.g. 16 or 8 for a stride-32
    model), made exactly by the "à trous" trick (see :mod:`fc2conv.conversion.refine`): every
    (own stride / ``stride``)-th cell equals the map at the model's own stride. Raises
    UnsupportedModelError listing every layer in the way.
    """
    name = name or type(model).__name__
    if not inplace:
        model = copy.deepcopy(model)
    size = (int(input_size[0]), int(input_size[1]))
    analysis = analyse(model, size, mode, name, rules, input_channels)
    the_plan = analysis.plan
    if the_plan.declines:
        raise UnsupportedModelError(
            f"{name}: cannot convert exactly; in the way:",
            [(d.layer, d.reason) for d in the_plan.declines],
        )
    map_index = _map_output(analysis, analysis.context.gm.graph)
    outputs = describe_outputs(analysis.context)
    if the_plan.already_convolutional:  # its 4-D outputs are maps already
        outputs = [replace(o, class_map=o.class_map or o.channels is not None) for o in outputs]
    gm = _apply(analysis)
    channels = analysis.input_channels
    canonical = the_plan.input_size
    # an already convolutional model has no single canonical cell: measure it as a CAM
    geometry_mode = "cam" if the_plan.already_convolutional else mode
    if mode == "window" and not the_plan.already_convolutional and stride is None:
        _exact_borders(gm, (1, channels, *canonical), the_plan)
    geometry = _measure(gm, channels, canonical, map_index, geometry_mode, name)
    if stride is not None and (stride, stride) != geometry.stride:
        target = (int(stride), int(stride))
        shape = (1, channels, *canonical)
        origin = None if geometry_mode == "cam" else (geometry.origin or geometry.min_size)
        gm, changes = refine_stride(gm, geometry.stride, target, origin, shape, map_index, name)
        the_plan.notes.append(
            f"stride refined from {geometry.stride[0]} to {stride} (à trous): " + "; ".join(changes)
        )
        geometry = _measure(gm, channels, canonical, map_index, geometry_mode, name, True)
    converted = FullyConvolutionalModel(
        gm, geometry, the_plan, channels, analysis.vector_input, outputs
    )
    declared = declared_preprocessing(model)
    if all(len(values) == channels for values in declared.values()):
        converted.metadata.update(declared)
    return converted.eval()
