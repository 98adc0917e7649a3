"""What names a model to load and how to convert it, in one value that every step of the
pipeline (and the export's child process, as JSON) takes."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """A model to load and convert (see :func:`fc2conv.pipeline.prepare`): ``weights``
    ("DEFAULT", "none" or a file), the canonical ``input_size`` and ``input_channels`` (default:
    the source's), ``num_classes`` (a head of that size, for random or fine-tuned weights),
    ``classes`` (names: a list or a file of one per line), the conversion ``mode`` and a finer
    output ``stride``, ``model_args`` for your own code's factory, and ``mean`` and ``std`` where
    the source does not say them."""

    weights: str = "DEFAULT"
    input_size: tuple[int, int] | None = None
    input_channels: int | None = None
    num_classes: int | None = None
    classes: list[str] | str | os.PathLike | None = None
    mode: str = "window"
    stride: int | None = None
    model_args: dict[str, Any] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None

    def as_json(self) -> dict[str, Any]:
        """The spec as JSON values (for the export's child process)."""
        values = asdict(self)
        if self.classes is not None and not isinstance(self.classes, list):
            values["classes"] = str(self.classes)
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ModelSpec:
        size = values.get("input_size")
        return cls(**{**values, "input_size": tuple(size) if size else None})
