"""The order of DEFAULT_RULES, and why it matters: the first rule that matches a node decides it.

Two rules that match the same node would make the plan depend on their order. These tests pin
the order, and fail when a rule claims a node that another rule claims too (beyond the one known
pair, whose rewrites agree), so that a new overlapping rule is placed on purpose, with a test.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from classifiers import POOLS, ConcatenatedFlattens, GatedNet, NormHead, Pooled, TwoBranches
from helpers import assert_equals_original, reinit
from torch import fx, nn

import fc2conv
from fc2conv.conversion.rules import DEFAULT_RULES, Context, Decline, Rule, Step

EXPECTED_ORDER = (
    "adaptive-pool",  # before global-pool: see test_the_known_overlap_plans_the_same
    "global-pool",
    "flatten",
    "flat-affine",
    "flat-concat",  # claims the concatenations of flattened maps; feature-axis, those of vectors
    "linear",
    "batch-norm",
    "layer-norm",
    "elementwise",
    "feature-axis",
    "feature-index",
    "permute",
    "conv1x1",
    "shape-query",
)
KNOWN_OVERLAPS = {("adaptive-pool", "global-pool")}


def test_default_rule_order_is_pinned() -> None:
    assert tuple(rule.name for rule in DEFAULT_RULES) == EXPECTED_ORDER


class OverlapProbe(Rule):
    """Placed first in a rule list: asks every rule about every node and records the nodes that
    more than one rule matches. It never matches itself, so the plan is unchanged."""

    name = "probe"

    def __init__(self) -> None:
        self.overlaps: list[tuple[str, tuple[str, ...]]] = []

    def match(self, node: fx.Node, ctx: Context) -> bool:
        matching = tuple(rule.name for rule in DEFAULT_RULES if rule.match(node, ctx))
        if len(matching) > 1:
            self.overlaps.append((node.name, matching))
        return False

    def check(self, node: fx.Node, ctx: Context) -> Step | Decline:
        raise AssertionError("never matches")


class OneByOneTrunk(nn.Module):
    """A trunk that ends in a 1×1 map at the canonical size, then an adaptive pool to 1×1."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, 2), nn.ReLU(), nn.Conv2d(4, 6, 3, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


CORPUS = {
    **{f"pooled-{pool}": (lambda pool=pool: Pooled(pool, "mlp"), (20, 20)) for pool in POOLS},
    "norm-head": (NormHead, (16, 16)),
    "two-branches": (TwoBranches, (16, 16)),
    **{
        f"flat-concat-{style}": (lambda style=style: ConcatenatedFlattens(style), (12, 10))
        for style in ("scaled", "branches", "vector")
    },
    "gated": (GatedNet, (32, 32)),
    "one-by-one": (OneByOneTrunk, (7, 7)),
    **{
        name: (lambda name=name: torchvision.models.get_model(name), (224, 224))
        for name in ("vgg11_bn", "mobilenet_v3_small", "convnext_tiny", "squeezenet1_1")
    },
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_no_two_rules_claim_the_same_node(name: str) -> None:
    build, size = CORPUS[name]
    probe = OverlapProbe()
    model = build().eval()
    with_probe = fc2conv.plan(model, size, rules=(probe, *DEFAULT_RULES))
    assert str(with_probe) == str(fc2conv.plan(model, size))  # a custom rule list works
    unexpected = [(node, rules) for node, rules in probe.overlaps if rules not in KNOWN_OVERLAPS]
    assert not unexpected, f"rules overlap on {unexpected}: place the new rule deliberately"
    if name == "one-by-one":
        assert probe.overlaps == [("pool", ("adaptive-pool", "global-pool"))]


def test_the_known_overlap_plans_the_same_either_way() -> None:
    """An adaptive pool to 1×1 on a 1×1 map: both rules remove it, so today their order gives
    the same converted model; adaptive-pool comes first as the more specific of the two."""
    model = reinit(OneByOneTrunk())
    swapped = (DEFAULT_RULES[1], DEFAULT_RULES[0], *DEFAULT_RULES[2:])
    images = torch.randn(2, 3, 23, 19)
    maps = []
    for rules in (DEFAULT_RULES, swapped):
        converted = fc2conv.convert(model, (7, 7), rules=rules)
        assert_equals_original(model, converted)
        with torch.no_grad():
            maps.append(converted(images))
    assert torch.equal(maps[0], maps[1])
