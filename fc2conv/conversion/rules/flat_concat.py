"""A concatenation of flattened maps of one spatial size: the maps joined along their channels.

Joining the row-major flattens of N×C_i×H×W maps along the features puts map i's feature
(c, h, w) at column ``offset_i + c·H·W + h·W + w`` with ``offset_i = (C_1 + … + C_{i-1})·H·W``:
exactly the row-major flatten of the maps joined along the channels, N×(ΣC_i)×H×W. So the
concatenation becomes a ``cat`` along axis 1 of the maps, and the Linear that reads it one
convolution with the kernel ``W.view(out, ΣC_i, H, W)`` (a view, see :mod:`.linear`): column
block i viewed as (out, C_i, H, W) is the kernel for map i, and a convolution over the joined
channels is the sum of the per-map convolutions, bias once. Elementwise operations on a part
(``2 * f``) commute with the flatten and run on its map. Maps of different spatial sizes share
no kernel, and a vector joined to a map has no place in it: both are refused; so are maps of one
size at the canonical input whose strides differ (their cells would not line up).
"""

from __future__ import annotations

import torch
from torch import fx

from ..layouts import Flat, Map, Vec
from ..tracing import shapes_until_failure
from .base import Context, Decline, NoPayload, Rule, Step, argument, function_is, set_argument

CONCATENATE = (torch.cat, torch.concat)
#: pixels added to the canonical height and width to see how the joined maps grow: maps of one
#: stride then differ by at most one cell, maps of different strides by many (16 for 32 and 64)
GROWTH = 1024


def joins_flattened_maps(node: fx.Node, ctx: Context) -> bool:
    """True for a concatenation of which some part is a flattened map (the rest is checked by
    :class:`FlatConcat`)."""
    return function_is(node, *CONCATENATE) and any(
        isinstance(ctx.layout(part), Flat) for part in ctx.classifier_inputs(node)
    )


def _size(layout: Flat) -> str:
    return f"{layout.channels}x{layout.height}x{layout.width}"


def _flattened_map(part: fx.Node, ctx: Context) -> fx.Node | None:
    """The trunk map that a flattened part was flattened from, back through the elementwise
    operations on it (and an earlier concatenation's first part)."""
    node = part
    while inputs := ctx.classifier_inputs(node):
        node = inputs[0]
    source = node.args[0] if node.args else None  # node is the flatten
    return source if isinstance(source, fx.Node) else None


def _grown_apart(parts: list[fx.Node], ctx: Context) -> str | None:
    """Where the parts' maps, equal at the canonical size, differ by more than a cell at
    ``GROWTH`` pixels more: their sizes there; None where they do not, or are not known
    (the geometry's measurement of the converted model then decides)."""
    image = next(node for node in ctx.gm.graph.nodes if node.op == "placeholder")
    shape = ctx.shape(image)
    if shape is None or len(shape) != 4:
        return None
    far = (shape[0], shape[1], shape[2] + GROWTH, shape[3] + GROWTH)
    grown = shapes_until_failure(ctx.gm, far)
    sizes = []
    for part in parts:
        source = _flattened_map(part, ctx)
        size = grown.get(source) if source is not None else None
        if size is None or len(size) != 4:
            return None
        sizes.append(size[2:])
    if all(abs(a - b) <= 1 for size in sizes for a, b in zip(size, sizes[0], strict=True)):
        return None
    listed = ", ".join(f"{rows}x{cols}" for rows, cols in sizes)
    return f"{listed} at {far[2]}x{far[3]}"


class FlatConcat(Rule[NoPayload]):
    name = "flat-concat"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        return joins_flattened_maps(node, ctx)

    def check(self, node: fx.Node, ctx: Context) -> Step[NoPayload] | Decline:
        parts = argument(node, 0, "tensors")
        inputs = ctx.classifier_inputs(node)
        if not isinstance(parts, (list, tuple)) or any(
            not isinstance(part, fx.Node) or part not in inputs for part in parts
        ):
            return self.decline(
                node, "concatenates the flattened map with a tensor that is not its features"
            )
        layouts = [ctx.layouts[part] for part in parts]
        others = [layout for layout in layouts if not isinstance(layout, Flat)]
        if others:
            kind = {Vec: "a feature vector", Map: "a pooled map"}.get(
                type(others[0]), "features of another layout"
            )
            return self.decline(
                node,
                f"concatenates a flattened map with {kind}, which no one convolution reads "
                "together with the map",
            )
        maps = [layout for layout in layouts if isinstance(layout, Flat)]
        dim = argument(node, 1, "dim", 0)
        if not isinstance(dim, int) or dim % 2 != 1:
            return self.decline(
                node, "joins the flattened maps along another axis than their features"
            )
        if len({(layout.height, layout.width) for layout in maps}) > 1:
            sizes = ", ".join(_size(layout) for layout in maps)
            return self.decline(
                node,
                f"concatenates flattened maps of different spatial sizes ({sizes}), which no one "
                "convolution kernel covers; pool them to one size before flattening",
            )
        if any(layout.axes != (1, 2, 3) for layout in maps):
            return self.decline(
                node,
                "concatenates maps flattened in another axis order than NCHW, whose joined "
                "features are not the flatten of one map",
            )
        if any(layout.affine for layout in maps):  # only a caller's own rules leave them here
            return self.decline(
                node, "a per-feature affine map before it does not fold into the Linear after it"
            )
        height, width = maps[0].height, maps[0].width
        apart = _grown_apart(list(parts), ctx)
        if apart is not None:
            return self.decline(
                node,
                f"concatenates flattened maps that are {height}x{width} at the canonical size "
                f"but grow apart on larger images ({apart}), so their cells do not line up",
            )
        channels = [layout.channels for layout in maps]
        joined = "+".join(map(str, channels))
        return self.step(
            node,
            f"concatenation of {len(maps)} flattened {height}x{width} maps → along their "
            f"channels ({joined})",
            Flat(sum(channels), height, width),
            NoPayload(),
        )

    def rewrite(self, step: Step[NoPayload], ctx: Context) -> None:
        set_argument(step.node, 1, "dim", 1)  # -1 of N×F would be the width of the maps
