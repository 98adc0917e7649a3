"""Running a converted model on images, from PyTorch or from an exported .onnx file.

Both carry what inference needs: the geometry, class names and preprocessing (mean/std); an
.onnx file carries them in its metadata. Running an .onnx file imports neither PyTorch nor
fc2conv's conversion code.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Fc2ConvError
from ..geometry import Geometry

__all__ = ["Output", "Runner", "as_runner", "choose_output", "class_index"]


@dataclass(frozen=True)
class Output:
    """One output of a converted model (see :mod:`fc2conv.conversion.outputs`)."""

    name: str
    channels: int | None
    class_map: bool
    ending: str  #: "softmax", "log-softmax", "sigmoid" or "scores"


def choose_output(outputs: list[Output], classes: list[str] | None, name: str) -> int:
    """The output that holds the class scores: the only class map; else the only one that ends
    in a softmax, log-softmax or sigmoid; else the only one with as many channels as there are
    class names. When none of these decides, the error lists the outputs to choose from."""
    maps = [i for i, output in enumerate(outputs) if output.class_map]
    rules = [
        maps,
        [i for i in maps if outputs[i].ending != "scores"],
        [i for i in maps if classes and outputs[i].channels == len(classes)],
    ]
    for candidates in rules:
        if len(candidates) == 1:
            return candidates[0]
    listed = ", ".join(
        f"{i}: {o.name} ({o.channels} channels, {o.ending})" for i, o in enumerate(outputs)
    )
    raise Fc2ConvError(
        f"{name}: cannot tell which output holds the class scores; choose one with "
        f"output= (--output), by index or name: {listed}"
    )


def class_index(classes: list[str], name: str | int) -> int:
    """Index of a class given by name or index (a number as text counts as an index where no
    class has that name); unknown names list the classes there are."""
    if isinstance(name, str) and name not in classes and name.lstrip("-").isdigit():
        name = int(name)
    if isinstance(name, (int, np.integer)):
        if not -len(classes) <= name < len(classes):
            raise Fc2ConvError(f"class index {name} is out of range: there are {len(classes)}")
        return int(name) % len(classes)
    if name not in classes:
        lowered = {c.lower(): c for c in classes}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=3)]
        if close:
            raise Fc2ConvError(f"no class '{name}'; did you mean {', '.join(close)}?")
        shown = ", ".join(classes[:20]) + (" ..." if len(classes) > 20 else "")
        raise Fc2ConvError(f"no class '{name}'; pass one of: {shown}")
    return classes.index(name)


@dataclass
class Runner:
    """A converted model, from PyTorch or onnxruntime, with what it needs to read images: the
    geometry, preprocessing, and the output that holds the class scores (``output``) with its
    class names."""

    name: str
    geometry: Geometry
    classes: list[str]
    mean: list[float]
    std: list[float]
    metadata: dict[str, Any] = field(default_factory=dict)
    module: Any = None  #: a FullyConvolutionalModel, or None
    session: Any = None  #: an onnxruntime InferenceSession (or OpenVINO's stand-in), or None
    runtime: str = "onnxruntime"  #: what runs ``session``: onnxruntime or openvino
    precision: str = "fp32"  #: what ``session`` computes in: fp32 or bf16
    outputs: list[Output] = field(default_factory=list)
    output: int = 0  #: the index of the output read as class scores

    @classmethod
    def _create(
        cls,
        name: str,
        geometry: Geometry,
        meta: dict,
        outputs: list[Output],
        choice: Any,
        **kw: Any,
    ) -> Runner:
        names = meta.get("classes")
        if choice is None:
            index = choose_output(outputs, names, name)
        elif isinstance(choice, int) or str(choice).lstrip("-").isdigit():
            index = int(choice)
            if not -len(outputs) <= index < len(outputs):
                raise Fc2ConvError(f"{name}: no output {index}; it has {len(outputs)}")
            index %= len(outputs)
        else:
            found = [i for i, output in enumerate(outputs) if output.name == choice]
            if not found:
                listed = ", ".join(output.name for output in outputs)
                raise Fc2ConvError(f"{name}: no output named '{choice}'; it has: {listed}")
            index = found[0]
        count = outputs[index].channels or 0
        channels = int(meta.get("input_channels", 3))
        if channels not in (1, 3):
            raise Fc2ConvError(
                f"{name} takes images of {channels} channels; fc2conv runs models of colour (3) "
                "or grey (1) images"
            )
        return cls(
            name,
            geometry,
            _names(names, count),
            list(meta.get("mean") or [0.0] * channels),
            list(meta.get("std") or [1.0] * channels),
            dict(meta),
            outputs=outputs,
            output=index,
            **kw,
        )

    @classmethod
    def from_model(cls, model: Any, output: int | str | None = None) -> Runner:
        """A runner for a :class:`fc2conv.FullyConvolutionalModel` (runs in PyTorch)."""
        outputs = [Output(**vars(info)) for info in model.outputs]
        return cls._create(
            model.name, model.geometry, model.metadata, outputs, output, module=model.eval()
        )

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike,
        output: int | str | None = None,
        threads: int | None = None,
        runtime: str = "onnxruntime",
        precision: str = "fp32",
    ) -> Runner:
        """A runner for a model exported by fc2conv (no PyTorch), in ``runtime``
        ("onnxruntime", or "openvino", which also runs ``precision="bf16"`` on CPUs that have
        it), with ``threads`` threads (default: one per core)."""
        from ..export.onnx_file import decode_metadata, read_metadata
        from ..runtime import check_runtime, open_runtime

        check_runtime(runtime, precision)
        file = Path(path)
        if not file.is_file():
            raise Fc2ConvError(f"ONNX model {file} does not exist; check the path")
        session = None
        if runtime == "onnxruntime":  # the metadata from the session: no onnx package to import
            try:
                session = open_runtime(file, runtime, precision, threads)
            except Exception:
                _converted(file, read_metadata(file))  # an incomplete file or not fc2conv's
                raise
            meta = decode_metadata(session.get_modelmeta().custom_metadata_map)
        else:
            meta = read_metadata(file)
        _converted(file, meta)
        if session is None:
            session = open_runtime(file, runtime, precision, threads)
        if "outputs" in meta:
            outputs = [Output(**info) for info in meta["outputs"]]
        else:  # written before fc2conv recorded its outputs: raw scores, as they were read
            outputs = [
                Output(
                    value.name,
                    value.shape[1] if isinstance(value.shape[1], int) else None,
                    True,
                    "scores",
                )
                for value in session.get_outputs()
            ]
        name = str(meta.get("model", file.stem))
        return cls._create(
            name,
            meta["geometry"],
            meta,
            outputs,
            output,
            session=session,
            runtime=runtime,
            precision=precision,
        )

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """H×W×3 floats in [0, 1] (or bytes, 0–255) → 1×C×H×W normalised with the model's
        mean and std, in the channel order the model was trained with (metadata
        ``channel_order``: RGB or BGR); for a model of grey images (metadata ``input_channels``
        1), the image's luma (ITU-R 601, as PIL's "L" mode)."""
        grey = self.metadata.get("input_channels") == 1  # 1 or 3: checked when opened
        if image.dtype == np.uint8 and not grey:
            return self._from_bytes(image)
        if image.dtype == np.uint8:
            image = image.astype(np.float32) / 255
        if grey:
            image = image @ np.array([[0.299], [0.587], [0.114]], np.float32)
        if self.metadata.get("channel_order") == "BGR":
            image = image[..., ::-1]
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        return ((image - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)

    def _from_bytes(self, image: np.ndarray) -> np.ndarray:
        """:meth:`preprocess` of 8-bit colour pixels through a table of the 256 values each
        channel can take: the same floats as from ``image / 255``, in one gather a channel."""
        values = np.arange(256, dtype=np.float32)[:, None] / 255
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        table = np.ascontiguousarray(((values - mean) / std).T)  # channels × 256
        if self.metadata.get("channel_order") == "BGR":
            image = image[..., ::-1]
        batch = np.empty((1, 3, *image.shape[:2]), np.float32)
        for channel in range(3):
            np.take(table[channel], image[..., channel], out=batch[0, channel])
        return batch

    @property
    def cam(self) -> bool:
        """Whether the model is a class-activation map (converted with ``mode="cam"``): its
        cells are the positions of the classifier's last feature map, the classifier applied
        to each, and their mean is the logits; no cell is the classifier on a window."""
        return (self.metadata.get("mode") or getattr(self.module, "mode", None)) == "cam"

    @property
    def ending(self) -> str:
        """What the chosen output ends in: softmax, log-softmax, sigmoid or scores."""
        return self.outputs[self.output].ending if self.outputs else "scores"

    def logits(self, image: np.ndarray) -> np.ndarray:
        """The chosen output (classes × rows × cols) for an H×W×3 image in [0, 1] (or bytes), as the model
        computes it. A model that takes only certain sizes (``Geometry.size_step``) sees the
        image without its rows and columns beyond the largest such size; the cells keep their
        image boxes."""
        height, width = self.geometry.usable_size(*image.shape[:2])
        self.geometry.check_input(height, width, self.name)
        image = image[:height, :width]
        batch = self.preprocess(image)
        if self.module is not None:
            import torch

            from ..conversion.tracing import output_leaves

            with torch.no_grad():
                output = output_leaves(self.module(torch.from_numpy(batch)))[self.output]
            return output[0].numpy()
        return self.session.run(None, {self.session.get_inputs()[0].name: batch})[self.output][0]

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities per cell: the model's own softmax or sigmoid where it ends in
        one (a sigmoid gives independent per-class probabilities), the exponential of a
        log-softmax, and a softmax over the classes of raw scores; never a second softmax."""
        values = self.logits(image)
        if self.ending in ("softmax", "sigmoid"):
            return values
        if self.ending == "log-softmax":
            return np.exp(values)
        shifted = np.exp(values - values.max(axis=0, keepdims=True))
        return shifted / shifted.sum(axis=0, keepdims=True)


def _converted(file: Path, meta: dict[str, Any]) -> None:
    """Refuse a file that fc2conv did not write (it has no geometry metadata)."""
    if "geometry" not in meta:
        converted = file.with_name(f"{file.stem}_fcn.onnx")
        raise Fc2ConvError(
            f"{file} was not converted by fc2conv (it has no geometry metadata); if it is "
            f"a classifier, convert it first: fc2conv {file} --out {converted}"
        )


def _names(classes: Any, count: int) -> list[str]:
    if classes and (not count or len(classes) == count):
        return [str(c) for c in classes]
    return [f"class {i}" for i in range(count)]


def as_runner(model: Any, output: int | str | None = None) -> Runner:
    """A Runner for a converted model, a Runner, or the path of an exported .onnx file;
    ``output`` chooses the output that holds class scores (default: see ``choose_output``)."""
    if isinstance(model, Runner):
        if output is None:
            return model
        return Runner._create(
            model.name,
            model.geometry,
            model.metadata,
            model.outputs,
            output,
            module=model.module,
            session=model.session,
            runtime=model.runtime,
            precision=model.precision,
        )
    if isinstance(model, (str, os.PathLike)):
        return Runner.from_onnx(model, output)
    if hasattr(model, "graph_module") and hasattr(model, "geometry"):
        return Runner.from_model(model, output)
    raise TypeError(f"expected a converted model or an .onnx path, got {type(model).__name__}")
