"""Running a converted model on images, from PyTorch or from an exported .onnx file.

Both sources carry what inference needs: the geometry, class names and preprocessing
(mean/std); an .onnx file carries them in its metadata, so it runs without fc2conv's model code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .convert import FullyConvolutionalModel
from .errors import Fc2ConvError
from .geometry import Geometry
from .tracing import ShapeProbe, output_leaves

__all__ = ["ImageLike", "Runner", "as_runner", "load_image"]

ImageLike = Image.Image | np.ndarray | torch.Tensor | str | os.PathLike


def load_image(image: ImageLike) -> np.ndarray:
    """Any supported image as an H×W×3 float32 array in [0, 1]."""
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as opened:
                image = opened.convert("RGB")
        except (OSError, ValueError) as exc:
            raise Fc2ConvError(f"cannot read image {image}: {exc}") from exc
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if tensor.dim() == 3 and tensor.shape[0] in (1, 3) and tensor.shape[-1] not in (1, 3):
            tensor = tensor.permute(1, 2, 0)
        image = tensor.numpy()
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise Fc2ConvError(f"expected an H x W x 3 image, got shape {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    return array.astype(np.float32)


@dataclass
class Runner:
    """A converted model, from PyTorch or onnxruntime, with what it needs to read images."""

    name: str
    geometry: Geometry
    classes: list[str]
    mean: list[float]
    std: list[float]
    extra: dict[str, Any] = field(default_factory=dict)
    _torch: FullyConvolutionalModel | None = None
    _session: Any = None

    @classmethod
    def from_model(cls, model: FullyConvolutionalModel) -> Runner:
        meta = model.metadata
        count = _class_count(model)
        return cls(
            model.name,
            model.geometry,
            _names(meta.get("classes"), count),
            list(meta.get("mean") or [0.0] * 3),
            list(meta.get("std") or [1.0] * 3),
            dict(meta),
            _torch=model.eval(),
        )

    @classmethod
    def from_onnx(cls, path: str | os.PathLike) -> Runner:
        import onnxruntime as ort

        from .onnx_file import read_metadata

        file = Path(path)
        if not file.is_file():
            raise Fc2ConvError(f"ONNX model {file} does not exist; check the path")
        meta = read_metadata(file)
        if "geometry" not in meta:
            raise Fc2ConvError(
                f"{file} was not written by fc2conv (it has no geometry metadata); export the "
                "model with `fc2conv MODEL --out FILE.onnx` or fc2conv.export_onnx"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        count = session.get_outputs()[0].shape[1]
        return cls(
            str(meta.get("model", file.stem)),
            meta["geometry"],
            _names(meta.get("classes"), count if isinstance(count, int) else 0),
            list(meta.get("mean") or [0.0] * 3),
            list(meta.get("std") or [1.0] * 3),
            meta,
            _session=session,
        )

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """H×W×3 floats in [0, 1] → 1×3×H×W normalised with the model's mean and std."""
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        return ((image - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)

    def logits(self, image: np.ndarray) -> np.ndarray:
        """Class maps (classes × rows × cols) of an H×W×3 image in [0, 1]."""
        height, width = image.shape[:2]
        self.geometry.check_input(height, width, self.name)
        batch = self.preprocess(image)
        if self._torch is not None:
            with torch.no_grad():
                output = output_leaves(self._torch(torch.from_numpy(batch)))[0]
            return output[0].numpy()
        return self._session.run(None, {self._session.get_inputs()[0].name: batch})[0][0]


def _class_count(model: FullyConvolutionalModel) -> int:
    height, width = model.geometry.canonical_size
    probe = ShapeProbe(model.graph_module)
    output = output_leaves(probe((1, model.input_channels, height, width)))[0]
    return int(output.shape[1])


def _names(classes: Any, count: int) -> list[str]:
    if classes and (not count or len(classes) == count):
        return [str(c) for c in classes]
    return [f"class {i}" for i in range(count)]


def as_runner(model: FullyConvolutionalModel | Runner | str | os.PathLike) -> Runner:
    """A Runner for a converted model, a Runner, or the path of an exported .onnx file."""
    if isinstance(model, Runner):
        return model
    if isinstance(model, FullyConvolutionalModel):
        return Runner.from_model(model)
    if isinstance(model, (str, os.PathLike)):
        return Runner.from_onnx(model)
    raise TypeError(f"expected a converted model or an .onnx path, got {type(model).__name__}")
