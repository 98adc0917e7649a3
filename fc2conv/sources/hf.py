"""Hugging Face image classifiers: ``hf:REPOSITORY`` (e.g. ``hf:facebook/convnext-tiny-224``,
from the Hugging Face cache, downloaded when missing) or ``hf:FOLDER`` (a checkpoint saved with
``save_pretrained``: ``config.json``, the weights, ``preprocessor_config.json``), loaded with
``transformers.AutoModelForImageClassification`` (the optional ``hf`` extra).

Class names come from ``config.id2label`` (unless they are transformers' placeholders
``LABEL_0``, ...); mean, std, the canonical input size and the resampling from the checkpoint's
image-processor configuration (its crop size where it crops, else its size), else the model
configuration's ``image_size``.

Swin and Swin V2 average their last token sequence before the classifier; such a model is
loaded as :class:`TokenGridClassifier`, which reads that sequence as the map it is (transformers'
own ``reshaped_hidden_states``) and averages the map, so that the planner sees a pooled feature
map. The two are checked equal at load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError
from .base import LoadedModel
from .files import apply_state_dict, load_checkpoint

__all__ = ["PREFIX", "TokenGridClassifier", "load_hf"]

PREFIX = "hf:"
#: PIL's resampling filters by number, as image-processor configurations store them
RESAMPLING = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise ModelLoadError(
            'hf: models need transformers: pip install -e ".[hf]" (or pip install transformers)'
        ) from exc
    transformers.utils.logging.disable_progress_bar()  # fc2conv reports its own steps
    transformers.utils.logging.set_verbosity_error()
    return transformers


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _unavailable(where: str, exc: Exception) -> ModelLoadError:
    folder = Path(where).expanduser()
    if folder.exists() or where.startswith((".", "/", "~")):
        return ModelLoadError(
            f"{PREFIX}{where}: not a Hugging Face image classifier checkpoint ({_first_line(exc)}); "
            "the folder needs config.json and the weights, as save_pretrained writes them"
        )
    return ModelLoadError(
        f"{PREFIX}{where}: cannot get it from the Hugging Face Hub ({_first_line(exc)}); offline, "
        f"put the repository {where} into the Hugging Face cache (HF_HOME, by default "
        "~/.cache/huggingface: huggingface-cli download on a machine online), or pass its "
        f"saved folder as {PREFIX}./FOLDER"
    )


def _preprocessing(transformers: Any, where: str, config: Any) -> dict[str, Any]:
    """mean, std, size and interpolation from the image-processor configuration, where there
    is one."""
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(where)
    except Exception:  # a checkpoint without preprocessor_config.json
        processor = None
    found: dict[str, Any] = {}
    if processor is not None:
        mean = getattr(processor, "image_mean", None)
        std = getattr(processor, "image_std", None)
        found["mean"] = [float(v) for v in mean] if mean is not None else None
        found["std"] = [float(v) for v in std] if std is not None else None
        resample = getattr(processor, "resample", None)
        found["interpolation"] = RESAMPLING.get(int(resample)) if resample is not None else None
        crops = getattr(processor, "do_center_crop", False)
        size = getattr(processor, "crop_size", None) if crops else None
        size = size or getattr(processor, "size", None)
        size = dict(size) if size is not None else {}
        if "height" in size and "width" in size:
            found["size"] = (int(size["height"]), int(size["width"]))
        elif "shortest_edge" in size:
            found["size"] = (int(size["shortest_edge"]),) * 2
    if "size" not in found:
        side = getattr(config, "image_size", None)
        if isinstance(side, int):
            found["size"] = (side, side)
        elif isinstance(side, (list, tuple)) and len(side) == 2:
            found["size"] = (int(side[0]), int(side[1]))
    return found


def _class_names(config: Any) -> list[str] | None:
    labels = getattr(config, "id2label", None) or {}
    names = [str(labels.get(i, labels.get(str(i), ""))) for i in range(len(labels))]
    if not names or any(not name for name in names):
        return None
    if all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        return None  # transformers' placeholders
    return names


class TokenGrid(nn.Module):
    """A Swin-style trunk's last stage as a feature map N×C×H×W after its final layer norm:
    transformers' ``reshaped_hidden_states[-1]`` is the token sequence that the model's pooler
    averages, laid out on its patch grid."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.base(x, output_hidden_states=True).reshaped_hidden_states[-1]
        layernorm: nn.Module = self.base.layernorm  # type: ignore[assignment]
        return layernorm(grid.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TokenGridClassifier(nn.Module):
    """An HF classifier whose head averages a token sequence (Swin, Swin V2), as the same
    computation on the sequence's map: global average pooling of :class:`TokenGrid`, then the
    model's own classifier. Shares the model's modules."""

    def __init__(self, base: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.trunk = TokenGrid(base)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(
            torch.flatten(nn.functional.adaptive_avg_pool2d(self.trunk(x), 1), 1)
        )


def _averages_token_grid(model: nn.Module) -> nn.Module | None:
    """The base model of a classifier whose pooler averages the token sequence of a patch grid
    (``AdaptiveAvgPool1d(1)`` beside a final ``layernorm``, and ``reshaped_hidden_states``)."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    pooler = getattr(base, "pooler", None)
    if not (
        isinstance(pooler, nn.AdaptiveAvgPool1d)
        and isinstance(getattr(base, "layernorm", None), nn.LayerNorm)
        and isinstance(getattr(model, "classifier", None), (nn.Linear, nn.Identity))
    ):
        return None
    return base


def _as_map_model(model: Any, name: str, size: tuple[int, int] | None) -> nn.Module:
    """``model`` itself, or for a Swin-style head the equivalent :class:`TokenGridClassifier`,
    checked equal to ``model`` on one random image of the canonical size."""
    base = _averages_token_grid(model)
    if base is None:
        return model
    grid = TokenGridClassifier(base, model.classifier).eval()
    channels = int(getattr(model.config, "num_channels", 3))
    x = torch.randn(2, channels, *(size or (224, 224)), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        try:
            want, got = model(pixel_values=x).logits, grid(x)
        except Exception as exc:
            raise ModelLoadError(
                f"{name}: its head averages a token sequence, which fc2conv reads as a map through "
                f"transformers' reshaped_hidden_states, but they are not there ({_first_line(exc)})"
            ) from exc
    scale = float(want.abs().max()) or 1.0
    if got.shape != want.shape or float((got - want).abs().max()) > 1e-4 * scale:
        raise ModelLoadError(
            f"{name}: its head averages a token sequence, and reading that sequence as a map "
            "through transformers' reshaped_hidden_states does not give the same logits"
        )
    return grid


def load_hf(where: str, weights: str = "DEFAULT", num_classes: int | None = None) -> LoadedModel:
    """The Hugging Face image classifier at ``where`` (a repository or a folder; without the
    ``hf:`` prefix) with ``weights``: "DEFAULT" (the checkpoint's), "none" (random, from its
    configuration) or a state-dict file; ``num_classes`` replaces its head."""
    transformers = _transformers()
    auto = transformers.AutoModelForImageClassification
    head = {"num_labels": num_classes, "ignore_mismatched_sizes": True} if num_classes else {}
    try:
        if weights.upper() == "DEFAULT":
            model = auto.from_pretrained(where, **head)
            source = f"Hugging Face ({where})"
        else:
            config = transformers.AutoConfig.from_pretrained(where, **(
                {"num_labels": num_classes} if num_classes else {}
            ))  # fmt: skip
            model = auto.from_config(config)
            source = "none (random)"
    except (OSError, ValueError) as exc:
        raise _unavailable(where, exc) from exc
    names = _class_names(model.config)
    if weights.upper() != "DEFAULT" and weights.lower() != "none":
        checkpoint = load_checkpoint(weights)
        apply_state_dict(model, checkpoint.state, PREFIX + where, weights)
        names = checkpoint.classes or names
        source = weights
    found = _preprocessing(transformers, where, model.config)
    metadata: dict[str, Any] = {
        "mean": found.get("mean"),  # None where the checkpoint does not say
        "std": found.get("std"),
        "interpolation": found.get("interpolation"),
        "weights": source,
    }
    if names and len(names) == model.config.num_labels:
        metadata["classes"] = names
    channels = getattr(model.config, "num_channels", None)
    size = found.get("size")
    model = _as_map_model(model.eval(), PREFIX + where, size)
    return LoadedModel(PREFIX + where, model, size, source, metadata, channels)
