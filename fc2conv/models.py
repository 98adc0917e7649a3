"""Where models come from: torchvision's classifiers (with their Weights API), weight files, and
the bundled ``shapes`` classifier."""

from __future__ import annotations

import difflib
import os
import re
import urllib.parse
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
    """A state dict from a .pth/.pt (tensors only, no code) or .safetensors file.

    .pth/.pt files are memory-mapped where their format allows, so the tensors can become the
    model's weights without a copy (see ``_build``).
    """
    file = Path(path)
    if not file.is_file():
        raise ModelLoadError(f"weights file {file} does not exist")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(file))
        else:
            try:
                state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:  # files from before torch's zip format cannot be mapped
                if "mmap" not in str(exc):
                    raise
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
        for key in list(state):  # in place: keeps the version metadata some modules read
            state[key.removeprefix("module.")] = state.pop(key)
    return state


def _apply_state_dict(
    model: nn.Module, state: dict[str, torch.Tensor], name: str, file: str
) -> None:
    expected = model.state_dict()
    for key in set(expected) - set(state):
        if key.endswith(".num_batches_tracked"):  # older checkpoints predate BatchNorm's counter
            state[key] = torch.tensor(0, dtype=torch.long)
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
    # assign: the model takes the state's tensors (cast only where the dtype differs). The
    # dict is changed in place, as it keeps the version metadata that some modules read.
    for key, value in state.items():
        state[key] = value.to(expected[key].dtype)
    model.load_state_dict(state, assign=True)
    left = [key for key, value in model.state_dict().items() if value.is_meta]
    if left:
        raise ModelLoadError(f"{name}: the weights leave {', '.join(left[:3])} unset")


#: densenet checkpoints name some layers 'norm.1' (torchvision renames them when it loads them)
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
#: what torchvision's googlenet and inception_v3 builders set when they load its weights
_PRETRAINED_KWARGS = {"transform_input": True, "aux_logits": True, "init_weights": False}


def _hub_checkpoint(url: str) -> Path:
    """The torch hub cache file for ``url``, downloaded (and hash-checked) when missing: what
    ``torch.hub.load_state_dict_from_url`` does, short of loading it."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    file = folder / Path(urllib.parse.urlparse(url).path).name
    if not file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        match = torch.hub.HASH_REGEX.search(file.name)
        torch.hub.download_url_to_file(url, str(file), match.group(1) if match else None)
    return file


def _build(name: str, state: dict[str, torch.Tensor], source: str, **kwargs: Any) -> nn.Module:
    """``name`` with ``state`` as its weights. The model is built on the meta device where its
    builder allows and takes the state's tensors as they are, so the weights are in memory
    once, not twice."""
    import torchvision

    if name.startswith("densenet"):
        for key in list(state):
            old = _DENSENET_OLD_KEY.match(key)
            if old:
                state[old.group(1) + old.group(2)] = state.pop(key)
    try:
        with torch.device("meta"):
            model = torchvision.models.get_model(name, weights=None, **kwargs)
    except NotImplementedError:
        # Builders that compute with tensors (RegNet's block widths) need real ones: build on
        # the CPU; its random weights are freed when the state's tensors replace them.
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    _apply_state_dict(model, state, name, source)
    return model


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
            checkpoint = _hub_checkpoint(default.url)
        except Exception as exc:
            raise ModelLoadError(
                f"{name}: cannot download the DEFAULT weights ({type(exc).__name__}: "
                f"{str(exc)[:160]}); pass a weights file with --weights PATH, or --weights none "
                "for random weights"
            ) from exc
        pretrained = _PRETRAINED_KWARGS if name in ("googlenet", "inception_v3") else {}
        model = _build(name, load_state_dict(checkpoint), str(checkpoint), **pretrained)
        if pretrained:  # as torchvision's builders do: the auxiliary heads are not trained
            model.aux_logits = False  # type: ignore[assignment]
            for head in ("aux1", "aux2", "AuxLogits"):
                if hasattr(model, head):
                    setattr(model, head, None)
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
    if weights.lower() == "none":
        model = torchvision.models.get_model(name, weights=None, **builder_kwargs)
        return LoadedModel(name, model.eval(), input_size, "none (random)", metadata)
    model = _build(name, load_state_dict(weights), weights, **builder_kwargs)
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
