"""Where models come from: torchvision's classifiers, timm's (``timm:NAME``), Hugging Face's
(``hf:REPOSITORY`` or ``hf:FOLDER``), your own code
(``package.module:factory``), weight files, and the bundled ``shapes`` classifier. Each source returns a :class:`LoadedModel` (the model, its canonical input size and
the metadata an exported file carries)."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .base import IMAGENET_MEAN, IMAGENET_STD, LoadedModel
from .catalogue import TORCHVISION_MODELS, TorchvisionModel, hub_checkpoints, natural_key
from .imports import is_import_string

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LoadedModel",
    "ModelEntry",
    "check_model_name",
    "describe_weights",
    "known_names",
    "load_model",
    "model_entries",
    "read_class_names",
    "supported_models",
]

BUNDLED = "shapes"


@dataclass(frozen=True)
class ModelEntry:
    """A model name as ``fc2conv list`` shows it (no PyTorch needed)."""

    name: str
    input_size: tuple[int, int]
    weights_cached: bool  #: the DEFAULT weights are on this machine (bundled, or in the hub cache)


def _torchvision_entry(name: str) -> TorchvisionModel | None:
    return next((entry for entry in TORCHVISION_MODELS if entry.name == name), None)


def model_entries() -> list[ModelEntry]:
    """Every model fc2conv converts and exports, sorted naturally (resnet18 before resnet101)."""
    from ..shapes.spec import INPUT_SIZE, WEIGHTS

    cache = hub_checkpoints()
    entries = [ModelEntry(BUNDLED, (INPUT_SIZE, INPUT_SIZE), WEIGHTS.is_file())]
    for model in TORCHVISION_MODELS:
        if model.refused is None:
            cached = (cache / model.checkpoint).is_file()
            entries.append(ModelEntry(model.name, (model.size, model.size), cached))
    return sorted(entries, key=lambda entry: natural_key(entry.name))


def supported_models() -> list[str]:
    """Names fc2conv converts and exports: the bundled classifier and torchvision's CNNs."""
    return [entry.name for entry in model_entries()]


def known_names() -> list[str]:
    """Every model name fc2conv knows, including those it refuses."""
    return [BUNDLED, *(entry.name for entry in TORCHVISION_MODELS)]


def _unknown(name: str) -> ModelLoadError:
    if "/" in name or "\\" in name or Path(name).suffix:  # a path, not a model's name
        return ModelLoadError(f"{name} does not exist (and is not a model name); check the path")
    close = difflib.get_close_matches(name, known_names(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `fc2conv list` shows them all"
    return ModelLoadError(f"unknown model '{name}'{hint}")


def check_model_name(name: str, *, exporting: bool = False) -> None:
    """Raise ModelLoadError for an unknown name and, with ``exporting``, for a model known not to
    export (before any work is done)."""
    if name == BUNDLED or name.startswith(("timm:", "hf:")) or is_import_string(name):
        return  # timm's and Hugging Face's names, import strings: checked when built
    entry = _torchvision_entry(name)
    if entry is None:
        raise _unknown(name)
    if exporting and entry.refused is not None:
        raise ModelLoadError(f"{name}: fc2conv does not export it: {entry.refused}")


def describe_weights(name: str, weights: str) -> str:
    """What ``weights`` means for ``name``, as the loading message shows it."""
    if weights.lower() == "none":
        return "random weights"
    if weights.upper() == "DEFAULT":
        if is_import_string(name):
            return "the weights its code gives it"
        return "bundled weights" if name == BUNDLED else "pretrained weights"
    return weights


def load_model(
    name: str,
    weights: str = "DEFAULT",
    *,
    num_classes: int | None = None,
    model_args: dict[str, Any] | None = None,
) -> LoadedModel:
    """Build ``name`` with ``weights``: "DEFAULT" (pretrained, via torch hub's cache), "none"
    (random) or a state-dict file path. A fine-tuned file's number of classes is read from it;
    ``num_classes`` gives it where it cannot be read (and for random weights). An import string
    (``package.module:factory``) builds your own model, calling the factory with
    ``model_args``."""
    if is_import_string(name):
        from .code import load_code

        return load_code(name, weights, num_classes, model_args)
    if model_args:
        raise ModelLoadError(f"{name}: --model-arg is for a model from your own code")
    if name == BUNDLED:
        from .bundled import load_shapes

        return load_shapes(weights, num_classes)
    if name.startswith("timm:"):
        from .timm import load_timm

        return load_timm(name.removeprefix("timm:"), weights, num_classes)
    if name.startswith("hf:"):
        from .hf import load_hf

        return load_hf(name.removeprefix("hf:"), weights, num_classes)
    entry = _torchvision_entry(name)
    if entry is None:
        raise _unknown(name)
    from .torchvision import load_torchvision

    return load_torchvision(entry, weights, num_classes)


def read_class_names(classes: list[str] | str | os.PathLike) -> list[str]:
    """Class names from a list or from a text file with one name per line."""
    if isinstance(classes, list):
        return [str(name) for name in classes]
    path = Path(classes)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"cannot read class names from {path}: {exc}") from exc
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise ModelLoadError(f"{path} holds no class names (one per line)")
    return names
