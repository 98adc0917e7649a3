"""Conversion: trace the classifier with torch.fx, plan the rewrite rule by rule, apply it.

``tracing`` → ``planner`` (the rules decide, node by node; see ``rules/``) → ``rewriter`` (each
step's rule rewrites its node; the geometry is measured) → ``model`` (the result).
"""

from __future__ import annotations

from .model import FullyConvolutionalModel
from .planner import MODES, Plan, plan
from .rewriter import convert
from .rules import DEFAULT_RULES, Rule

__all__ = ["DEFAULT_RULES", "MODES", "FullyConvolutionalModel", "Plan", "Rule", "convert", "plan"]
