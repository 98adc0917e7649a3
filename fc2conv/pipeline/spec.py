"""What names a model to load and how to convert it, in one value that every step of the
pipeline (and the export's child process, as JSON) takes."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import Fc2ConvError

__all__ = ["PYTORCH_ONLY", "ModelSpec", "refuse_pytorch_options"]


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

    def flags(self, *fields: str) -> list[str]:
        """The command-line flags of ``fields`` (default: all) that are set away from their
        defaults, e.g. ``["--weights", "--model-arg"]``."""
        names = fields or tuple(DEFAULTS)
        changed = [name for name in names if getattr(self, name) != DEFAULTS[name]]
        return [f"--{FLAGS.get(name, name.replace('_', '-'))}" for name in changed]

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


#: the options a PyTorch model takes and an ONNX classifier's file already holds
PYTORCH_ONLY = ("weights", "num_classes", "mode", "stride", "model_args")
DEFAULTS = asdict(ModelSpec())
FLAGS = {"model_args": "model-arg"}


def refuse_pytorch_options(spec: ModelSpec) -> None:
    """Refuse, in one line, the options of ``spec`` that an ONNX classifier's file holds."""
    flags = spec.flags(*PYTORCH_ONLY)
    if flags:
        raise Fc2ConvError(
            f"{', '.join(flags)}: not for an ONNX classifier (its weights and head are in the file)"
        )
