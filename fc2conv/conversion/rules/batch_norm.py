"""Batch norm on feature vectors: BatchNorm1d becomes BatchNorm2d over channels.

In eval mode ``BatchNorm1d`` on N×F is ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with
one parameter per feature; ``BatchNorm2d`` on N×F×rows×cols applies the same per-channel formula at
every position. The new module takes the old one's parameters and buffers (no copy).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..layouts import Flat, Map, Vec
from .base import Context, Decline, Rule, Step, function_is, module_is, replace_module


@dataclass(frozen=True)
class ToBatchNorm2d:
    pass


class BatchNorm(Rule[ToBatchNorm2d]):
    name = "batch-norm"

    def match(self, node: fx.Node, ctx: Context) -> bool:
        is_norm = module_is(node, ctx, nn.BatchNorm1d, nn.BatchNorm2d) or function_is(
            node, F.batch_norm
        )
        on_flat = isinstance(ctx.layout(node.args[0]), Flat)  # see .flat_affine
        return is_norm and bool(ctx.classifier_inputs(node)) and not on_flat

    def check(self, node: fx.Node, ctx: Context) -> Step[ToBatchNorm2d] | Decline:
        layout = ctx.layout(node.args[0])
        if isinstance(layout, Vec) and module_is(node, ctx, nn.BatchNorm1d):
            return self.step(
                node,
                "BatchNorm1d → BatchNorm2d (same parameters and buffers)",
                Vec(),
                ToBatchNorm2d(),
            )
        if isinstance(layout, (Vec, Map)):
            return self.keep(node, "kept (normalises axis 1)", layout)
        return self.decline(node, "normalises features that are not one vector per image")

    def rewrite(self, step: Step[ToBatchNorm2d], ctx: Context) -> None:
        old = ctx.module(step.node)
        assert isinstance(old, nn.BatchNorm1d)
        with torch.device("meta"):
            new = nn.BatchNorm2d(
                old.num_features, old.eps, old.momentum, old.affine, old.track_running_stats
            )
        if old.affine:
            new.weight, new.bias = old.weight, old.bias
        for buffer in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(new, buffer, getattr(old, buffer))
        new.train(old.training)
        replace_module(ctx, step.node, new)
