"""Hugging Face image classifiers: ``hf:REPOSITORY`` (e.g. ``hf:facebook/convnext-tiny-224``,
from the Hugging Face cache, downloaded when missing) or ``hf:FOLDER`` (a checkpoint saved with
``save_pretrained``: ``config.json``, the weights, ``preprocessor_config.json``), loaded with
``transformers.AutoModelForImageClassification`` (the optional ``hf`` extra).

Class names come from ``config.id2label`` (unless they are transformers' placeholders
``LABEL_0``, ...); mean, std, the canonical input size and the resampling from the checkpoint's
image-processor configuration (its crop size where it crops, else its size), else the model
configuration's ``image_size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .base import LoadedModel
from .files import apply_state_dict, load_checkpoint

__all__ = ["PREFIX", "load_hf"]

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
    return LoadedModel(PREFIX + where, model.eval(), size, source, metadata, channels)
