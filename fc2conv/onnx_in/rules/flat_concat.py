"""A ``Concat`` of flattened maps of one spatial size → the maps joined along their channels.

Joining the channels-first flattens of N×C_i×H×W maps along the features puts map i's feature
(c, h, w) at column ``offset_i + c·H·W + h·W + w`` with ``offset_i = (C_1 + … + C_{i-1})·H·W``:
exactly the flatten of the maps joined along the channels, N×(ΣC_i)×H×W. So the ``Concat`` runs
on the maps (axis 1), and the linear layer that reads it is one convolution over the joined
channels (see :mod:`.linear`): the sum of a convolution per map, bias once. Maps of different
sizes share no kernel; a vector joined to a map has no place in it; channels-last flattens
interleave the maps' channels cell by cell, so they do not join this way: all three are refused.
Maps of one size at the canonical input whose strides differ would not line up on larger
inputs: they are refused too, where onnx shape inference shows them growing apart.
"""

from __future__ import annotations

from typing import Any

from ..kinds import NCHW, Flat, roles_text
from .base import Build, Context, Decline, OnnxRule, Step, attribute

#: pixels added to the canonical height and width to see how the joined maps grow: maps of one
#: stride then differ by at most one cell per axis, maps of different strides by a factor
GROWTH = 1024
#: the most that maps of one stride differ in cells there (one row and column of ~500: 0.4%)
SAME_STRIDE = 1.05


def _grown_cells(node: Any, ctx: Context, flats: tuple[Flat, ...]) -> list[int] | None:
    """The cells of each joined map on an image GROWTH pixels larger each way (the joined
    features over the map's channels; None where shape inference cannot follow them there)."""
    from ..graph import skeleton, static_shapes

    image = ctx.graph.model.graph.input[0].name  # the N×C×H×W image the planner reads
    canonical = ctx.shape(image)
    if canonical is None or len(canonical) != 4:
        return None
    larger = [*canonical[:2], canonical[2] + GROWTH, canonical[3] + GROWTH]
    try:
        shapes = static_shapes(skeleton(ctx.graph.model), image, larger, strict=False)
    except Exception:  # shape inference gives up beyond the canonical size: no probe
        return None
    found = [shapes.get(name) for name in node.input]
    if any(shape is None or len(shape) != 2 for shape in found):
        return None
    return [shape[1] // flat.dims[1] for shape, flat in zip(found, flats, strict=True)]  # type: ignore[index]


class FlatConcat(OnnxRule[tuple[Flat, ...]]):
    name = "flat concat"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type == "Concat" and any(isinstance(ctx.kind(n), Flat) for n in node.input)

    def check(self, node: Any, ctx: Context) -> Step[tuple[Flat, ...]] | Decline:
        kinds = [ctx.kind(name) for name in node.input]
        flats = tuple(kind for kind in kinds if isinstance(kind, Flat))
        if len(flats) != len(kinds):
            return self.decline(
                node, "joins a flattened map with a value that is not one, which has no place "
                "in the map"
            )  # fmt: skip
        if attribute(node, "axis", 1) % 2 != 1:
            return self.decline(node, "joins flattened maps along another axis than the features")
        for flat in flats:
            if flat.roles != NCHW:
                return self.decline(
                    node, f"joins a map flattened in the {roles_text(flat.roles)} order, whose "
                    "features interleave the maps' channels; only NCHW flattens join along "
                    "the channels"
                )  # fmt: skip
        sizes = sorted({f"{flat.dims[2]}x{flat.dims[3]}" for flat in flats})
        if len(sizes) > 1:
            return self.decline(
                node, f"joins flattened maps of different sizes ({', '.join(sizes)}), which "
                "share no kernel"
            )  # fmt: skip
        grown = _grown_cells(node, ctx, flats)
        if grown is not None and max(grown) > SAME_STRIDE * min(grown):
            shown = " and ".join(map(str, sorted(set(grown))))
            return self.decline(
                node, f"joins flattened maps that are {sizes[0]} at the canonical size but grow "
                f"apart on larger images ({shown} cells at {GROWTH} pixels more), so their "
                "cells do not line up"
            )  # fmt: skip
        first = flats[0].dims
        joined = (first[0], sum(flat.dims[1] for flat in flats), first[2], first[3])
        action = f"Concat of the {len(flats)} maps along their channels ({joined[1]})"
        return self.step(node, action, Flat(node.output[0], NCHW, joined), flats)

    def rewrite(self, step: Step[tuple[Flat, ...]], build: Build) -> None:
        sources = [flat.source for flat in step.payload]
        build.emit("Concat", sources, "concat", output=step.node.output[0], axis=1)
