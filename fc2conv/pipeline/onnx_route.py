"""The second route, for a classifier whose forward torch.fx cannot trace (an ``assert`` on the
input's size, a branch on a shape in the classifier's own forward): export the original with
torch.onnx at its canonical size, check that export against PyTorch in onnxruntime, and convert
the exported graph with the ONNX rules, which verify the result in onnxruntime at three sizes.

At the canonical size a shape branch takes the path that every window of a larger image takes,
so the converted cells are the classifier on their windows. The result is an ONNX model only:
there is no PyTorch module on this route.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExportError, ForwardTraceError, ModelLoadError
from ..progress import SILENT, Progress
from .spec import ModelSpec

if TYPE_CHECKING:
    from ..onnx_in import OnnxConversion
    from ..sources import LoadedModel

__all__ = ["ROUTE", "Routed", "convert_through_onnx"]

ROUTE = "route: torch.onnx + ONNX rules"


@dataclass
class Routed:
    """The conversion on this route, and how far the torch.onnx export of the original is from
    PyTorch at the canonical size."""

    conversion: OnnxConversion
    export_error: float
    why: str  #: why torch.fx could not take the model

    @property
    def route(self) -> str:
        """The plan's line that names the route and why it was taken."""
        return f"{ROUTE} ({self.why})"

    def verified(self) -> str:
        """The check against PyTorch, as the export's report shows it."""
        height, width = self.conversion.geometry.canonical_size
        return (
            f"the torch.onnx export of the original at {height}x{width}: relative error "
            f"{self.export_error:.1e}"
        )


def convert_through_onnx(
    name: str,
    loaded: LoadedModel,
    spec: ModelSpec,
    size: tuple[int, int],
    traced: ForwardTraceError,
    out: Path | None,
    *,
    opset: int = 18,
    rtol: float = 1e-4,
    verify: bool = True,
    progress: Progress = SILENT,
) -> Routed:
    """Take ``loaded`` (whose forward torch.fx failed on with ``traced``) through torch.onnx and
    the ONNX rules, writing the result to ``out`` (None: not written). The export is always
    checked against PyTorch at the canonical size (that run also counts the classes); with
    ``verify``, the conversion is checked against the export (see :func:`fc2conv.convert_onnx`)."""
    from ..conversion.declared import declared_channels, declared_preprocessing
    from ..export.torch_onnx import export_original
    from ..onnx_in import convert_onnx
    from ..sources import read_class_names

    why = traced.reason
    if spec.mode != "window" or spec.stride is not None:
        raise ModelLoadError(
            f"{name}: {why}; fc2conv takes it through torch.onnx and the ONNX rules, which "
            "convert in window mode at the model's own stride: leave out --mode and --stride"
        ) from traced
    channels = spec.input_channels or loaded.input_channels or declared_channels(loaded.model)
    channels = channels or _first_conv_channels(loaded.model, name, why)
    known = {**declared_preprocessing(loaded.model), **loaded.metadata}
    source_names, mean, std = (known.pop(key, None) for key in ("classes", "mean", "std"))
    with tempfile.TemporaryDirectory(prefix=".fc2conv-") as folder:
        original = Path(folder) / "original.onnx"
        with progress.step(f"exporting the original with torch.onnx at {size[0]}x{size[1]}"):
            try:
                export_original(loaded.model, size, channels, original, opset=opset)
            except ExportError as exc:
                raise ExportError(
                    f"{name}: {why}, and {exc}; fc2conv needs a forward that does not branch on "
                    "the image's values"
                ) from exc
        with progress.step("checking the export against PyTorch"):
            count, error = _check_export(loaded.model, original, channels, size, name, rtol)
        names = read_class_names(spec.classes) if spec.classes is not None else source_names
        if spec.classes is None and names is not None and len(names) != count:
            names = None  # names of another head (e.g. ImageNet's 1000)
        conversion = convert_onnx(
            original,
            out,
            input_size=size,
            input_channels=channels,
            classes=names,
            mean=spec.mean or mean,
            std=spec.std or std,
            rtol=rtol,
            verify=verify,
            force=True,
            name=name,
            metadata={k: v for k, v in known.items() if v is not None} | {"route": ROUTE},
            progress=progress,
        )
    conversion.plan.notes.insert(0, f"{ROUTE} ({why})")
    return Routed(conversion, error, why)


def _first_conv_channels(model: Any, name: str, why: str) -> int:
    """The input channels of the model's first Conv2d."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    raise ModelLoadError(f"{name}: {why}, and it has no Conv2d: pass --input-channels")


def _check_export(
    model: Any, path: Path, channels: int, size: tuple[int, int], name: str, rtol: float
) -> tuple[int, float]:
    """The classes the model's first output has, and how far the torch.onnx export of the
    original is from PyTorch on two seeded random images."""
    import numpy as np
    import torch

    from ..compare import relative_error
    from ..conversion.tracing import output_leaves
    from ..runtime import open_session

    images = np.random.default_rng(0).standard_normal((2, channels, *size)).astype(np.float32)
    with torch.no_grad():
        expected = [leaf.numpy() for leaf in output_leaves(model(torch.from_numpy(images)))]
    session = open_session(path, optimization="basic", memory_arena=False)
    got = session.run(None, {session.get_inputs()[0].name: images})
    if len(got) != len(expected):
        raise ExportError(
            f"{name}: the torch.onnx export has {len(got)} outputs, the model {len(expected)}"
        )
    error = max(relative_error(e, g.reshape(e.shape)) for e, g in zip(expected, got, strict=True))
    if not error <= rtol:
        raise ExportError(
            f"{name}: torch.onnx's export of the original differs from PyTorch at "
            f"{size[0]}x{size[1]}: relative error {error:.2e} > {rtol:.1e}"
        )
    return int(expected[0].reshape(len(images), -1).shape[1]), error
