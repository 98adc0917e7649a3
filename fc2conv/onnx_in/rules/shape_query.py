"""``Shape``/``Size`` of any tensor: a shape computation, kept as it is.

Where it reads a tensor of the classifier path, only a reshape of that tensor uses it, and the
rules that rewrite such reshapes do not read their shape input, so it is left unused."""

from __future__ import annotations

from typing import Any

from .base import Context, Decline, OnnxRule, Step


class ShapeQuery(OnnxRule):
    name = "shape query"

    def match(self, node: Any, ctx: Context) -> bool:
        return node.op_type in ("Shape", "Size")

    def check(self, node: Any, ctx: Context) -> Step | Decline:
        return self.keep(node, None, "kept (a shape computation)")
