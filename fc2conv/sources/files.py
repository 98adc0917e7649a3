"""Weights from files: state dicts in .pth/.pt (memory-mapped) or .safetensors files, applied to
a model built on the meta device so that every weight exists once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError

__all__ = ["apply_state_dict", "load_state_dict"]


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a .pth/.pt (tensors only, no code) or .safetensors file.

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
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"weights file {file} does not hold a state dict of tensors")
    if state and all(key.startswith("module.") for key in state):
        for key in list(state):  # in place: keeps the version metadata some modules read
            state[key.removeprefix("module.")] = state.pop(key)
    return state


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
