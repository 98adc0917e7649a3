"""The one path from a model name to a converted model with its metadata: load, then convert.

The command line, the isolated export, the example and the tests all take it, so a model from
any source reaches the exporter and the run stage with the same metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

from .conversion import FullyConvolutionalModel, convert
from .progress import SILENT, Progress
from .sources import LoadedModel, describe_weights, load_model

__all__ = ["Prepared", "prepare"]


@dataclass
class Prepared:
    """The loaded original (kept for verification) and its conversion, sharing weights."""

    loaded: LoadedModel
    converted: FullyConvolutionalModel


def prepare(
    name: str,
    weights: str = "DEFAULT",
    *,
    input_size: tuple[int, int] | None = None,
    input_channels: int | None = None,
    mode: str = "window",
    progress: Progress = SILENT,
) -> Prepared:
    """Load ``name`` with ``weights`` (see :func:`fc2conv.sources.load_model`), convert it at
    ``input_size`` with ``input_channels`` (default: the model's own) and give the converted
    model the source's metadata (class names, preprocessing). The original is left as it was."""
    with progress.step(f"loading {name} ({describe_weights(name, weights)})"):
        loaded = load_model(name, weights)
    with progress.step("converting"):
        size = input_size or loaded.input_size
        channels = input_channels or loaded.input_channels
        converted = convert(
            loaded.model, size, mode=mode, name=name, inplace=True, input_channels=channels
        )
        converted.metadata.update(loaded.metadata)
    return Prepared(loaded, converted)
