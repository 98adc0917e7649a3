"""Weights from files: state dicts in .pth/.pt (memory-mapped) or .safetensors files, applied to
a model built on the meta device so that every weight exists once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError

__all__ = [
    "Checkpoint",
    "apply_state_dict",
    "checkpoint_classes",
    "head_size",
    "load_checkpoint",
    "load_state_dict",
]

#: where training scripts keep class names beside the weights
CLASS_KEYS = ("classes", "class_names", "categories", "labels", "idx_to_class", "class_to_idx")


def checkpoint_classes(checkpoint: Any) -> list[str] | None:
    """Class names saved beside the weights (``{"state_dict": ..., "classes": [...]}`` and the
    like), in class-index order, or None."""
    if not isinstance(checkpoint, dict):
        return None
    for key in CLASS_KEYS:
        value = checkpoint.get(key)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            return list(value)
        if isinstance(value, dict) and value:
            pairs = [(k, v) for k, v in value.items()]
            if key == "class_to_idx" and all(isinstance(v, int) for _, v in pairs):
                return [name for name, _ in sorted(pairs, key=lambda pair: pair[1])]
            if key == "idx_to_class" and all(isinstance(k, int) for k, _ in pairs):
                return [str(name) for _, name in sorted(pairs)]
    return None


def head_size(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> int | None:
    """The number of classes of a fine-tuned checkpoint: when every tensor that does not fit
    the stock model differs only in its first axis, and by the same size, that size."""
    sizes = set()
    for key in set(state) & set(expected):
        got, want = state[key].shape, expected[key].shape
        if got != want:
            if len(got) != len(want) or got[1:] != want[1:]:
                return None
            sizes.add(int(got[0]))
    return sizes.pop() if len(sizes) == 1 else None


@dataclass
class Checkpoint:
    """A weights file: its state dict, and the class names saved beside it (or None)."""

    state: dict[str, torch.Tensor]
    classes: list[str] | None


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a weights file (see :func:`load_checkpoint`)."""
    return load_checkpoint(path).state


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """A state dict from a .pth/.pt (tensors only, no code) or .safetensors file, and the class
    names saved beside it.

    .pth/.pt files are memory-mapped where their format allows, so the tensors can become the
    model's weights without a copy (see ``apply_state_dict``).
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
    classes = checkpoint_classes(state)
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"weights file {file} does not hold a state dict of tensors")
    if state and all(key.startswith("module.") for key in state):
        for key in list(state):  # in place: keeps the version metadata some modules read
            state[key.removeprefix("module.")] = state.pop(key)
    return Checkpoint(state, classes)


def apply_state_dict(
    model: nn.Module, state: dict[str, torch.Tensor], name: str, file: str
) -> None:
    """Make ``state``'s tensors the weights of ``model`` (which may live on the meta device),
    or raise ModelLoadError naming the keys that do not fit."""
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
