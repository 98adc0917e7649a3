"""The order of ONNX_RULES is deliberate: the first rule that matches a node decides it. This
pins the order and the pairs of rules that match the same node, so that a new rule that claims
another's nodes is placed on purpose."""

from __future__ import annotations

from itertools import combinations

from onnx_graphs import HEADS, small_classifier

import fc2conv
from fc2conv.onnx_in import ONNX_RULES

#: (earlier, later): the earlier rule decides the nodes both match
OVERLAPS = {
    ("shape query", "trunk"),
    ("shape query", "vector shape"),
    ("window pool", "trunk"),
    ("flatten", "trunk reshape"),
    ("flatten", "trunk"),
    ("trunk reshape", "trunk"),
    ("channels matmul", "trunk"),
    ("vector shape", "trunk"),
}


def test_the_order_is_pinned():
    assert [rule.name for rule in ONNX_RULES] == [
        "shape query", "window pool", "flatten", "trunk reshape", "channels matmul", "trunk",
        "vector shape", "linear", "class axis", "elementwise", "batch norm", "layer norm",
        "binary", "feature reduction", "flat concat", "concat", "pointwise conv",
    ]  # fmt: skip


def test_only_the_known_pairs_overlap():
    names = [rule.name for rule in ONNX_RULES]
    for head in [
        h for h in HEADS if h not in ("mlp", "segmentation", "argmax", "shifted_flat", "wide_conv")
    ]:
        plan = fc2conv.convert_onnx(small_classifier(head), verify=False).plan
        ctx = plan.ctx
        for node in ctx.graph.model.graph.node:
            matching = [rule.name for rule in ONNX_RULES if rule.match(node, ctx)]
            for pair in combinations(matching, 2):
                assert tuple(sorted(pair, key=names.index)) in OVERLAPS, (head, node.name, pair)
