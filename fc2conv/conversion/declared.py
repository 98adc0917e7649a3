"""What a model states about its input itself, for a model passed to ``fc2conv.convert``
directly (model sources say it through :class:`~fc2conv.sources.LoadedModel`): its channels,
and the preprocessing its source trained it with."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..sources.base import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["declared_channels", "declared_preprocessing"]


def declared_channels(model: nn.Module) -> int | None:
    """The input channels a model states itself: timm's ``pretrained_cfg["input_size"]``,
    transformers' ``config.num_channels`` (a stem's first layer may take more: TResNet's
    space-to-depth stem reads 48 channels from 3)."""
    cfg = getattr(model, "pretrained_cfg", None)
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if isinstance(size, (tuple, list)) and len(size) == 3 and isinstance(size[0], int):
        return size[0]
    channels = getattr(getattr(model, "config", None), "num_channels", None)
    return channels if isinstance(channels, int) and channels > 0 else None


def declared_preprocessing(model: nn.Module) -> dict[str, Any]:
    """``mean`` and ``std`` (for images in [0, 1]) where the model's library says them: timm's
    ``pretrained_cfg``; ImageNet's for torchvision's classifiers, which all take them; else
    nothing (the preprocessing is then unknown, and the run path says so)."""
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict) and cfg.get("mean") and cfg.get("std"):
        return {"mean": [float(v) for v in cfg["mean"]], "std": [float(v) for v in cfg["std"]]}
    if type(model).__module__.startswith("torchvision.models."):
        return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    return {}
