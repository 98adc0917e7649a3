"""timm's models (``timm:NAME``), with timm's pretrained configuration and Hugging Face cache.

``timm.create_model`` builds the model; DEFAULT weights come the way timm gets them (the Hugging
Face cache, downloaded when missing), and the model's ``pretrained_cfg`` gives the input size,
channels, mean, std and interpolation that the exported file records. Models with an option to
take other input sizes (``strict_img_size=False``, as Swin has) are built with it, so that their
maps can grow. timm is an optional dependency: ``pip install fc2conv[timm]``.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from ..errors import ModelLoadError
from .base import LoadedModel
from .files import apply_state_dict, head_size, load_checkpoint

__all__ = ["PREFIX", "load_timm"]

PREFIX = "timm:"
#: options that let a timm model take inputs of another size than the one it was built for
SIZE_OPTIONS: tuple[dict[str, Any], ...] = ({"strict_img_size": False}, {})


def _timm() -> Any:
    try:
        import timm
    except ImportError as exc:
        raise ModelLoadError(
            "timm models need the timm package: pip install 'fc2conv[timm]'"
        ) from exc
    return timm


def _create(timm: Any, name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with the first size option the model accepts."""
    for options in SIZE_OPTIONS:
        try:
            return timm.create_model(name, **options, **kwargs)
        except TypeError as exc:
            if not options or "unexpected keyword" not in str(exc):
                raise
    raise AssertionError("unreachable: the last option set is empty")


def _class_names(timm: Any, model: nn.Module) -> list[str] | None:
    """ImageNet class names for a model pretrained on an ImageNet subset timm knows."""
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(model)
        if not subset:
            return None
        names = [d.split(",")[0].strip() for d in ImageNetInfo(subset).label_descriptions()]
    except Exception:  # timm versions without this helper, or no subset
        return None
    return names if len(names) == getattr(model, "num_classes", None) else None


def _config(model: nn.Module) -> dict[str, Any]:
    """The model's timm pretrained configuration (input size, mean, std, ...)."""
    return dict(getattr(model, "pretrained_cfg", None) or {})


def _first_sentence(exc: Exception) -> str:
    """The first sentence of an error's message (the Hub's run on for several), at most 200
    characters."""
    text = str(exc).strip().split(". ")[0].rstrip(".")
    return text if len(text) <= 200 else text[:199] + "…"


def load_timm(name: str, weights: str, num_classes: int | None = None) -> LoadedModel:
    """timm's model ``name`` (without the ``timm:`` prefix) with ``weights``: "DEFAULT" (timm's
    pretrained weights), "none" (random) or a state-dict file."""
    timm = _timm()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.7)
        hint = f"; did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
        raise ModelLoadError(f"timm has no model '{name}'{hint}")
    kwargs: dict[str, Any] = {"num_classes": num_classes} if num_classes else {}
    names = None
    if weights.upper() == "DEFAULT":
        try:
            model = _create(timm, name, pretrained=True, **kwargs)
        except Exception as exc:
            config = timm.models.get_pretrained_cfg(name)
            where = getattr(config, "hf_hub_id", None) or getattr(config, "url", None) or name
            raise ModelLoadError(
                f"{PREFIX}{name}: cannot get timm's pretrained weights ({type(exc).__name__}: "
                f"{_first_sentence(exc)}); they come from {where} into the Hugging Face cache "
                "(HF_HOME, by default ~/.cache/huggingface); or pass a weights file with "
                "--weights PATH, or --weights none"
            ) from exc
        names = _class_names(timm, model)
        source = f"timm pretrained ({_config(model).get('hf_hub_id') or name})"
    elif weights.lower() == "none":
        model = _create(timm, name, pretrained=False, **kwargs)
        source = "none (random)"
    else:
        checkpoint = load_checkpoint(weights)
        if num_classes is None:
            stock = _create(timm, name, pretrained=False)
            found = head_size(checkpoint.state, stock.state_dict())
            if found is not None and found != getattr(stock, "num_classes", None):
                kwargs["num_classes"] = found
            del stock
        model = _create(timm, name, pretrained=False, **kwargs)
        apply_state_dict(model, checkpoint.state, PREFIX + name, weights)
        names = checkpoint.classes
        source = weights
    config = _config(model)
    channels, height, width = config.get("input_size", (3, 224, 224))
    metadata: dict[str, Any] = {
        "mean": list(config.get("mean", (0.485, 0.456, 0.406))),
        "std": list(config.get("std", (0.229, 0.224, 0.225))),
        "interpolation": config.get("interpolation"),
        "weights": source,
    }
    if names:
        metadata["classes"] = names
    size = (int(height), int(width))
    return LoadedModel(PREFIX + name, model.eval(), size, source, metadata, int(channels))
