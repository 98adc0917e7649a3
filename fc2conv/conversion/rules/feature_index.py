"""Indexing the features: slices along the feature axis, and new 1-sized axes.

``x[:, a:b]`` on N×F features takes features a to b; on the converted N×F×rows×cols map the same
index takes the same features at every cell. ``x[..., a:b]`` (the last axis) becomes
``x[:, a:b]``. ``x[:, :, None, None]`` (N×F → N×F×1×1) has nothing to do on a map.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from torch import fx

from ..layouts import Layout, Map, Vec
from .base import Context, Decline, Rule, Step, replace_with_input

EVERYTHING = slice(None, None, None)


@dataclass(frozen=True)
class Index:
    """The index the converted model uses; None removes the indexing."""

    index: tuple[Any, ...] | None


class FeatureIndex(Rule[Index]):
    name = "feature-index"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        return (
            node.op == "call_function"
            and node.target is operator.getitem
            and isinstance(ctx.layout(node.args[0]), (Vec, Map))
        )

    def check(self, node: fx.Node, ctx: Context) -> Step[Index] | Decline:
        index: Any = node.args[1]
        layout = ctx.layout(node.args[0])
        if not isinstance(index, tuple):
            index = (index,)
        features = [i for i in index if isinstance(i, slice)]
        result: Layout = layout  # type: ignore[assignment]
        if isinstance(layout, Vec) and index == (EVERYTHING, EVERYTHING, None, None):
            return self.step(node, "new 1x1 axes removed", Map(), Index(None))
        last_axis = len(index) == 2 and index[0] is Ellipsis and isinstance(index[1], slice)
        if last_axis and isinstance(layout, Vec):
            return self.step(
                node,
                f"slice of the last axis → slice of feature axis 1 ({_show(index[1])})",
                result,
                Index((EVERYTHING, index[1])),
            )
        if len(index) == 2 and index[0] == EVERYTHING and len(features) == 2:
            return self.keep(node, f"kept (slice of the features, {_show(index[1])})", result)
        return self.decline(
            node,
            f"indexes the classifier features with {index!r}, which selects across images, "
            "positions or single features; only slices of the feature axis carry over to maps",
        )

    def rewrite(self, step: Step[Index], ctx: Context) -> None:
        node = step.node
        if step.payload.index is None:
            replace_with_input(node, node.args[0])  # type: ignore[arg-type]
            return
        node.args = (node.args[0], step.payload.index)


def _show(part: Any) -> str:
    start = "" if part.start is None else part.start
    stop = "" if part.stop is None else part.stop
    step = "" if part.step is None else f":{part.step}"
    return f"[{start}:{stop}{step}]"
