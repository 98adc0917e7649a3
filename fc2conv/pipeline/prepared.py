"""The one path from a model name to a converted model with its metadata: load, then convert.

The command line, the export, the run path, the example and the tests all take it, so a model
from any source reaches the exporter and the run stage with the same metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from ..progress import SILENT, Progress
from ..sources import LoadedModel, describe_weights, load_model, read_class_names
from .spec import ModelSpec

if TYPE_CHECKING:
    from ..conversion import FullyConvolutionalModel

__all__ = ["Prepared", "class_count", "convert_loaded", "load_spec", "prepare", "prepare_spec"]


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
    num_classes: int | None = None,
    classes: list[str] | str | os.PathLike | None = None,
    mode: str = "window",
    stride: int | None = None,
    model_args: dict[str, Any] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    progress: Progress = SILENT,
) -> Prepared:
    """Load ``name`` with ``weights`` (see :func:`fc2conv.sources.load_model`), convert it at
    ``input_size`` with ``input_channels`` (default: the model's own) and ``stride`` (a finer
    output stride, see :func:`fc2conv.convert`) and give the converted
    model the source's metadata (class names, preprocessing). ``classes`` (a list, or a file
    with one name per line) names the model's classes where the source does not; ``mean`` and
    ``std`` (per channel, for images in [0, 1]) the preprocessing where the source does not
    (your own code); ``model_args`` go to your own code's factory. The original is left as it
    was."""
    spec = ModelSpec(
        weights=weights,
        input_size=input_size,
        input_channels=input_channels,
        num_classes=num_classes,
        classes=classes,
        mode=mode,
        stride=stride,
        model_args=model_args,
        mean=mean,
        std=std,
    )
    return prepare_spec(name, spec, progress)


def prepare_spec(name: str, spec: ModelSpec, progress: Progress = SILENT) -> Prepared:
    """:func:`prepare` with its arguments in a :class:`ModelSpec`."""
    loaded, size = load_spec(name, spec, progress)
    return Prepared(loaded, convert_loaded(name, spec, loaded, size, progress))


def load_spec(
    name: str, spec: ModelSpec, progress: Progress = SILENT
) -> tuple[LoadedModel, tuple[int, int]]:
    """The model ``name`` loaded as ``spec`` says, and its canonical size."""
    if spec.classes is not None:
        read_class_names(spec.classes)  # a file that cannot be read fails before the load
    with progress.step(f"loading {name} ({describe_weights(name, spec.weights)})"):
        loaded = load_model(
            name, spec.weights, num_classes=spec.num_classes, model_args=spec.model_args
        )
    size = spec.input_size or loaded.input_size
    if size is None:
        raise ModelLoadError(
            f"{name}: its code does not say the size it classifies; pass --input-size HxW "
            "(the size it was trained at)"
        )
    return loaded, (int(size[0]), int(size[1]))


def convert_loaded(
    name: str,
    spec: ModelSpec,
    loaded: LoadedModel,
    size: tuple[int, int],
    progress: Progress = SILENT,
) -> FullyConvolutionalModel:
    """Convert ``loaded`` at ``size`` as ``spec`` says (in place: the weights are shared), with
    the source's metadata and the spec's class names and preprocessing."""
    from ..conversion import convert

    mean, std = spec.mean, spec.std
    names = read_class_names(spec.classes) if spec.classes is not None else None
    with progress.step("converting"):
        channels = spec.input_channels or loaded.input_channels
        converted = convert(
            loaded.model,
            size,
            mode=spec.mode,
            name=name,
            inplace=True,
            input_channels=channels,
            stride=spec.stride,
        )
        converted.metadata.update({k: v for k, v in loaded.metadata.items() if v is not None})
        for key, values in (("mean", mean), ("std", std)):
            if values is not None:
                if len(values) != converted.input_channels:
                    raise ModelLoadError(
                        f"{name}: {len(values)} {key} values for {converted.input_channels} "
                        f"input channels; give one per channel"
                    )
                converted.metadata[key] = [float(value) for value in values]
    count = class_count(converted)
    if names is not None:
        if len(names) != count:
            raise ModelLoadError(
                f"{name}: {len(names)} class names for a model with {count} classes"
            )
        converted.metadata["classes"] = names
    elif len(converted.metadata.get("classes") or []) not in (0, count):
        del converted.metadata["classes"]  # names of another head (e.g. ImageNet's 1000)
    return converted


def class_count(converted: FullyConvolutionalModel) -> int:
    """Channels of the converted model's class map, measured on meta tensors."""
    from ..conversion.tracing import ShapeProbe, output_leaves

    height, width = converted.geometry.canonical_size
    probe = ShapeProbe(converted.graph_module)
    shape = (1, converted.input_channels, height, width)
    return int(output_leaves(probe(shape))[0].shape[1])
