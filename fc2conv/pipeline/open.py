"""A model to run, from an exported file or converted on the fly from its name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import Fc2ConvError, ForwardTraceError
from ..export.onnx_file import looks_like_onnx, preprocessing_known
from ..progress import SILENT
from ..run.runner import Runner
from .prepared import convert_loaded, load_spec
from .spec import ModelSpec

__all__ = ["open_model"]


def open_model(
    model: str | os.PathLike,
    *,
    weights: str = "DEFAULT",
    input_size: tuple[int, int] | None = None,
    input_channels: int | None = None,
    num_classes: int | None = None,
    classes: Any = None,
    mode: str = "window",
    stride: int | None = None,
    model_args: dict[str, Any] | None = None,
    output: int | str | None = None,
    progress: Any = None,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
) -> Runner:
    """A runner for an exported ONNX file (recognised by its content, whatever its name) in
    ``runtime`` at ``precision`` (see :meth:`Runner.from_onnx`), or for a model name, converted
    on the fly with :func:`.prepare` (runs in PyTorch; a model whose forward torch.fx cannot
    trace takes the second route of :mod:`.onnx_route` and runs in onnxruntime). ``progress``
    hears the steps and two warnings: model options given with a file (they apply to names),
    and a model that records no preprocessing."""
    spec = ModelSpec(
        weights=weights,
        input_size=input_size,
        input_channels=input_channels,
        num_classes=num_classes,
        classes=classes,
        mode=mode,
        stride=stride,
        model_args=model_args,
    )
    progress = progress or SILENT
    if Path(model).is_file() and spec.flags():
        flags = ", ".join(spec.flags())
        progress.warning(f"warning: {flags} apply to model names, not to {model}")
    runner = _open(model, spec, output, progress, runtime, precision)
    if not preprocessing_known(runner.metadata):
        progress.warning(
            f"note: {runner.name} records no mean and std, so images run as they are (mean 0, "
            "std 1); if it was trained on normalised images, convert it again with --mean/--std "
            "or --imagenet"
        )
    return runner


def _open(
    model: str | os.PathLike,
    spec: ModelSpec,
    output: int | str | None,
    progress: Any,
    runtime: str,
    precision: str,
) -> Runner:
    if Path(model).is_file():
        if not looks_like_onnx(model):
            raise Fc2ConvError(f"{model} is not an ONNX model; pass an .onnx file or a model name")
        shown = runtime + (f" ({precision})" if precision != "fp32" else "")
        with progress.step(f"loading {model} in {shown}"):
            return Runner.from_onnx(model, output, runtime=runtime, precision=precision)
    if Path(model).suffix.lower() == ".onnx":
        raise Fc2ConvError(f"{model} does not exist; check the path")
    if (runtime, precision) != ("onnxruntime", "fp32"):
        raise Fc2ConvError(
            f"--runtime and --precision apply to exported .onnx files; {model} runs in PyTorch "
            f"(export it first: fc2conv {model} --out {Path(str(model)).name}_fcn.onnx)"
        )
    name = str(model)
    loaded, size = load_spec(name, spec, progress)
    try:
        return Runner.from_model(convert_loaded(name, spec, loaded, size, progress), output)
    except ForwardTraceError as traced:  # the second route: an ONNX model, run in onnxruntime
        import tempfile

        from .onnx_route import convert_through_onnx

        with tempfile.TemporaryDirectory(prefix=".fc2conv-") as folder:
            path = Path(folder) / "converted.onnx"
            convert_through_onnx(name, loaded, spec, size, traced, path, progress=progress)
            return Runner.from_onnx(path, output)
