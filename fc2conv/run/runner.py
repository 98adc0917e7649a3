"""Running a converted model on images, from PyTorch or from an exported .onnx file.

Both carry what inference needs: the geometry, class names and preprocessing (mean/std); an
.onnx file carries them in its metadata. Running an .onnx file imports neither PyTorch nor
fc2conv's conversion code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Fc2ConvError
from ..geometry import Geometry

__all__ = ["Runner", "as_runner", "open_model"]


@dataclass
class Runner:
    """A converted model, from PyTorch or onnxruntime, with what it needs to read images."""

    name: str
    geometry: Geometry
    classes: list[str]
    mean: list[float]
    std: list[float]
    metadata: dict[str, Any] = field(default_factory=dict)
    module: Any = None  #: a FullyConvolutionalModel, or None
    session: Any = None  #: an onnxruntime InferenceSession, or None

    @classmethod
    def from_model(cls, model: Any) -> Runner:
        """A runner for a :class:`fc2conv.FullyConvolutionalModel` (runs in PyTorch)."""
        from ..pipeline import class_count

        meta = model.metadata
        count = class_count(model)
        return cls(
            model.name,
            model.geometry,
            _names(meta.get("classes"), count),
            list(meta.get("mean") or [0.0] * 3),
            list(meta.get("std") or [1.0] * 3),
            dict(meta),
            module=model.eval(),
        )

    @classmethod
    def from_onnx(cls, path: str | os.PathLike) -> Runner:
        """A runner for a model exported by fc2conv (runs in onnxruntime, no PyTorch)."""
        from ..export.onnx_file import read_metadata
        from ..runtime import open_session

        file = Path(path)
        if not file.is_file():
            raise Fc2ConvError(f"ONNX model {file} does not exist; check the path")
        meta = read_metadata(file)
        if "geometry" not in meta:
            raise Fc2ConvError(
                f"{file} was not written by fc2conv (it has no geometry metadata); export the "
                "model with `fc2conv MODEL --out FILE.onnx` or fc2conv.export_onnx"
            )
        session = open_session(file)
        count = session.get_outputs()[0].shape[1]
        return cls(
            str(meta.get("model", file.stem)),
            meta["geometry"],
            _names(meta.get("classes"), count if isinstance(count, int) else 0),
            list(meta.get("mean") or [0.0] * 3),
            list(meta.get("std") or [1.0] * 3),
            meta,
            session=session,
        )

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """H×W×3 floats in [0, 1] → 1×3×H×W normalised with the model's mean and std."""
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        return ((image - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)

    def logits(self, image: np.ndarray) -> np.ndarray:
        """Class maps (classes × rows × cols) of an H×W×3 image in [0, 1]. A model that takes
        only certain sizes (see ``Geometry.size_step``) sees the image without its last rows
        and columns beyond the largest such size; the cells keep their image boxes."""
        height, width = self.geometry.usable_size(*image.shape[:2])
        self.geometry.check_input(height, width, self.name)
        image = image[:height, :width]
        batch = self.preprocess(image)
        if self.module is not None:
            import torch

            from ..conversion.tracing import output_leaves

            with torch.no_grad():
                output = output_leaves(self.module(torch.from_numpy(batch)))[0]
            return output[0].numpy()
        return self.session.run(None, {self.session.get_inputs()[0].name: batch})[0][0]


def _names(classes: Any, count: int) -> list[str]:
    if classes and (not count or len(classes) == count):
        return [str(c) for c in classes]
    return [f"class {i}" for i in range(count)]


def open_model(
    model: str | os.PathLike,
    *,
    weights: str = "DEFAULT",
    input_size: tuple[int, int] | None = None,
    input_channels: int | None = None,
    num_classes: int | None = None,
    classes: Any = None,
    mode: str = "window",
    progress: Any = None,
) -> Runner:
    """A runner for an exported ONNX file (recognised by its content, whatever its name) or for
    a model name, converted on the fly with :func:`fc2conv.pipeline.prepare` (needs PyTorch)."""
    from ..progress import SILENT

    progress = progress or SILENT
    if Path(model).is_file():
        from ..export.onnx_file import looks_like_onnx

        if not looks_like_onnx(model):
            raise Fc2ConvError(f"{model} is not an ONNX model; pass an .onnx file or a model name")
        with progress.step(f"loading {model} in onnxruntime"):
            return Runner.from_onnx(model)
    from ..pipeline import prepare

    name = str(model)
    prepared = prepare(
        name,
        weights,
        input_size=input_size,
        input_channels=input_channels,
        num_classes=num_classes,
        classes=classes,
        mode=mode,
        progress=progress,
    )
    return Runner.from_model(prepared.converted)


def as_runner(model: Any) -> Runner:
    """A Runner for a converted model, a Runner, or the path of an exported .onnx file."""
    if isinstance(model, Runner):
        return model
    if isinstance(model, (str, os.PathLike)):
        return Runner.from_onnx(model)
    if hasattr(model, "graph_module") and hasattr(model, "geometry"):
        return Runner.from_model(model)
    raise TypeError(f"expected a converted model or an .onnx path, got {type(model).__name__}")
