"""``x.size()``, ``x.shape`` and ``x.dim()`` of the classifier's features.

Only the batch size of the features keeps its value once vectors become maps (``x.view(x.size(0),
-1)`` is the usual case, and the reshape it feeds is removed). A query of any other dimension
that the finished graph still uses would read the map's size instead of the vector's, so the
model is refused then.
"""

from __future__ import annotations

from torch import fx

from ...errors import UnsupportedModelError
from ..layouts import NotTensor
from .base import Context, Decline, NoPayload, Rule, Step, method_is


class ShapeQuery(Rule[NoPayload]):
    name = "shape-query"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_query = method_is(node, "size", "dim") or (
            node.op == "call_function" and node.target is getattr and node.args[1] == "shape"
        )
        return bool(is_query) and bool(ctx.classifier_inputs(node))

    def check(self, node: fx.Node, ctx: Context) -> Step[NoPayload] | Decline:
        return self.keep(node, "shape query", NotTensor())

    def finish(self, step: Step[NoPayload], ctx: Context) -> None:
        node = step.node
        if node.graph is not ctx.gm.graph or not node.users:
            return  # removed with the reshape it fed
        if method_is(node, "dim"):
            reads_other = True
        elif method_is(node, "size") and len(node.args) > 1:
            reads_other = bool(node.args[1] != 0)
        else:
            reads_other = not all(
                user.op == "call_function" and user.args[1] == 0 for user in node.users
            )
        if reads_other:
            raise UnsupportedModelError(
                f"{ctx.name}: cannot convert exactly",
                [
                    (
                        step.layer,
                        "reads the shape of the classifier features, which changes when they "
                        "become maps",
                    )
                ],
            )
