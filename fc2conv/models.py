"""Where models come from: torchvision's classifiers (with their Weights API), weight files, and
the bundled ``shapes`` classifier."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ModelLoadError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LoadedModel",
    "load_model",
    "load_state_dict",
    "supported_models",
]

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
#: torchvision classifiers whose head reads a token sequence; they cannot become convolutional.
TRANSFORMERS = ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14", "maxvit_t")
#: convert in PyTorch, but torch.onnx bakes their shifted-window padding for the example size,
#: so the export fails its onnxruntime check at other sizes
NO_DYNAMIC_EXPORT = ("swin_b", "swin_s", "swin_t", "swin_v2_b", "swin_v2_s", "swin_v2_t")


@dataclass
class LoadedModel:
    name: str
    model: nn.Module
    input_size: tuple[int, int]
    weights: str
    metadata: dict[str, Any] = field(default_factory=dict)


def torchvision_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def supported_models() -> list[str]:
    """Names fc2conv converts and exports: the bundled classifier and torchvision's CNNs."""
    excluded = (*TRANSFORMERS, *NO_DYNAMIC_EXPORT)
    return ["shapes", *[n for n in torchvision_models() if n not in excluded]]


def _unknown(name: str) -> ModelLoadError:
    known = ["shapes", *torchvision_models()]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `fc2conv list` shows them all"
    return ModelLoadError(f"unknown model '{name}'{hint}")


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a .pth/.pt (tensors only, no code) or .safetensors file."""
    file = Path(path)
    if not file.is_file():
        raise ModelLoadError(f"weights file {file} does not exist")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"weights file {file} cannot be read ({type(exc).__name__}: {str(exc)[:200]}); "
            "pass a state dict saved with torch.save(model.state_dict(), path) or safetensors"
        ) from exc
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"weights file {file} does not hold a state dict of tensors")
    if state and all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def _apply_state_dict(
    model: nn.Module, state: dict[str, torch.Tensor], name: str, file: str
) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in set(state) & set(expected)
        if state[key].shape != expected[key].shape
    )
    if missing or unexpected or mismatched:

        def some(keys: list[str]) -> str:
            return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

        parts = [
            f"{len(missing)} missing ({some(missing)})" if missing else "",
            f"{len(unexpected)} unexpected ({some(unexpected)})" if unexpected else "",
            f"{len(mismatched)} of another shape ({some(mismatched)})" if mismatched else "",
        ]
        raise ModelLoadError(
            f"weights file {file} is not for {name}: keys differ: "
            + "; ".join(p for p in parts if p)
        )
    model.load_state_dict(state)


def _load_torchvision(name: str, weights: str) -> LoadedModel:
    import torchvision

    builder_kwargs: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        builder_kwargs["init_weights"] = False
    enum = torchvision.models.get_model_weights(name)
    default = enum.DEFAULT
    crop = default.transforms().crop_size
    input_size = (int(crop[0]), int(crop[-1]))
    metadata: dict[str, Any] = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    if weights.upper() == "DEFAULT":
        try:
            model = torchvision.models.get_model(name, weights=default)
        except Exception as exc:
            raise ModelLoadError(
                f"{name}: cannot download the DEFAULT weights ({type(exc).__name__}: "
                f"{str(exc)[:160]}); pass a weights file with --weights PATH, or --weights none "
                "for random weights"
            ) from exc
        transforms = default.transforms()
        metadata = {
            "classes": list(default.meta["categories"]),
            "mean": list(transforms.mean),
            "std": list(transforms.std),
            "weights": str(default),
        }
        return LoadedModel(name, model.eval(), input_size, str(default), metadata)
    if name == "inception_v3":
        builder_kwargs["aux_logits"] = True
    model = torchvision.models.get_model(name, weights=None, **builder_kwargs)
    if weights.lower() == "none":
        return LoadedModel(name, model.eval(), input_size, "none (random)", metadata)
    _apply_state_dict(model, load_state_dict(weights), name, weights)
    return LoadedModel(name, model.eval(), input_size, str(weights), metadata)


def load_model(name: str, weights: str = "DEFAULT") -> LoadedModel:
    """Build ``name`` with ``weights``: "DEFAULT" (pretrained, via torch hub's cache), "none"
    (random) or a state-dict file path."""
    if name == "shapes":
        from .shapes import load_shapes

        return load_shapes(weights)
    if name not in torchvision_models():
        raise _unknown(name)
    return _load_torchvision(name, weights)
