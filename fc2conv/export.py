"""ONNX export with dynamic batch, height and width, checked before it is put in place.

The model is exported with torch.onnx's dynamo exporter into a temporary folder beside the target,
checked with ``onnx.checker`` (full check) and run in onnxruntime at the canonical size and two
larger ones, one non-square and not a multiple of the stride; outputs are compared with PyTorch
and map sizes with the geometry. Only then are the files renamed into place, so a failed or
interrupted export leaves nothing at the output path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .convert import FullyConvolutionalModel
from .errors import ExportError, Fc2ConvError
from .geometry import Geometry
from .tracing import output_leaves

__all__ = ["ExportReport", "check_sizes", "export_onnx", "read_metadata"]

TWO_GB = 2 * 1024**3
INPUT_NAME = "images"
METADATA_PREFIX = "fc2conv."


@dataclass
class SizeCheck:
    height: int
    width: int
    map_size: tuple[int, int]
    relative_error: float


@dataclass
class ExportReport:
    path: Path
    bytes: int
    external_data: Path | None
    opset: int
    checks: list[SizeCheck] = field(default_factory=list)


def check_sizes(geometry: Geometry) -> list[tuple[int, int]]:
    """Canonical size, a non-square size off the stride grid, and twice the canonical size."""
    height, width = geometry.canonical_size
    stride_h, stride_w = geometry.stride
    odd = (height + 37, width + 101)  # 261x325 for a 224x224 model
    if odd[0] % stride_h == 0:
        odd = (odd[0] + 1, odd[1])
    if odd[1] % stride_w == 0:
        odd = (odd[0], odd[1] + 1)
    return [(height, width), odd, (2 * height, 2 * width)]


def _relative_error(expected: np.ndarray, actual: np.ndarray) -> float:
    scale = float(np.abs(expected).max())
    error = float(np.abs(expected.astype(np.float64) - actual).max())
    return error / scale if scale > 0 else (0.0 if error == 0 else float("inf"))


def metadata_for(converted: FullyConvolutionalModel) -> dict[str, str]:
    """The metadata_props a consumer needs: geometry, classes, preprocessing, versions."""
    from . import __version__

    values: dict[str, Any] = {
        **converted.metadata,  # classes, mean, std and any model-specific keys
        "version": __version__,
        "model": converted.name,
        "head": converted.head,
        "geometry": converted.geometry.as_dict(),
        "input_channels": converted.input_channels,
    }
    return {
        METADATA_PREFIX + key: value if isinstance(value, str) else json.dumps(value)
        for key, value in values.items()
        if value is not None
    }


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """fc2conv's metadata from an exported model, decoded (no weights are loaded)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    result: dict[str, Any] = {}
    for prop in model.metadata_props:
        if prop.key.startswith(METADATA_PREFIX):
            key = prop.key[len(METADATA_PREFIX) :]
            try:
                result[key] = json.loads(prop.value)
            except json.JSONDecodeError:
                result[key] = prop.value
    if "geometry" in result:
        result["geometry"] = Geometry.from_dict(result["geometry"])
    return result


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    # Extended, not "all": the NCHWc layout rewrite of ORT_ENABLE_ALL copies every weight.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_program(converted: FullyConvolutionalModel, opset: int, batch: int) -> Any:
    height, width = converted.geometry.canonical_size
    example = (torch.randn(batch, converted.input_channels, height, width),)
    dim = torch.export.Dim
    dynamic = ({0: dim.DYNAMIC, 2: dim.DYNAMIC, 3: dim.DYNAMIC},)
    # torch.export logs warnings about shape guards it cannot simplify; the checks that follow
    # the export are what tell whether it is right
    guards = logging.getLogger("torch.fx.experimental.symbolic_shapes")
    level = guards.level
    guards.setLevel(logging.ERROR)
    try:
        program = torch.onnx.export(
            converted.graph_module.eval(),
            example,
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            dynamic_shapes=dynamic,
            verbose=False,
            optimize=True,
        )
    finally:
        guards.setLevel(level)
    if program is None:
        raise ExportError(f"{converted.name}: torch.onnx.export returned no program")
    dims = program.model.graph.inputs[0].shape
    assert dims is not None
    names: dict = {str(dims[0]): "batch", str(dims[2]): "height", str(dims[3]): "width"}
    if len(names) != 3 or any(isinstance(d, int) for d in (dims[0], dims[2], dims[3])):
        raise ExportError(f"{converted.name}: the exported input shape {dims} is not dynamic")
    program.rename_axes(names)
    _name_map_axes(program.model)
    return program


def _name_map_axes(model: Any) -> None:
    """Give every 4-D output symbolic batch/rows/cols axes. The exporter's own shape inference
    sometimes writes the canonical 1x1 there, which onnxruntime then warns about on every run."""
    import onnx_ir as ir

    for index, value in enumerate(model.graph.outputs):
        if value.shape is not None and len(value.shape) == 4:
            suffix = "" if index == 0 else f"_{index}"
            value.shape = ir.Shape(["batch", value.shape[1], f"rows{suffix}", f"cols{suffix}"])


def _check(
    path: Path,
    converted: FullyConvolutionalModel,
    rtol: float,
    batch: int,
    progress: Callable[[str], None],
) -> list[SizeCheck]:
    import onnx

    progress("checking the ONNX graph (onnx.checker, full check)")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(
            f"{converted.name}: onnx.checker rejects the exported model: {exc}"
        ) from exc
    session = _session(path)
    results = []
    generator = torch.Generator().manual_seed(0)
    for height, width in check_sizes(converted.geometry):
        progress(f"checking in onnxruntime at {height}x{width}")
        images = torch.randn(batch, converted.input_channels, height, width, generator=generator)
        with torch.no_grad():
            expected = [t.numpy() for t in output_leaves(converted(images))]
        actual = session.run(None, {session.get_inputs()[0].name: images.numpy()})
        want_size = converted.output_size(height, width)
        got_size = tuple(actual[0].shape[-2:])
        if got_size != want_size:
            raise ExportError(
                f"{converted.name}: at {height}x{width} onnxruntime gives a "
                f"{got_size[0]}x{got_size[1]} map, the geometry predicts "
                f"{want_size[0]}x{want_size[1]}"
            )
        error = max(_relative_error(e, a) for e, a in zip(expected, actual, strict=True))
        if not error <= rtol:
            raise ExportError(
                f"{converted.name}: at {height}x{width} onnxruntime differs from PyTorch: "
                f"relative error {error:.2e} > {rtol:.0e}"
            )
        results.append(SizeCheck(height, width, want_size, error))
    return results


def export_onnx(
    converted: FullyConvolutionalModel,
    path: str | os.PathLike,
    *,
    opset: int = 18,
    rtol: float = 1e-4,
    check: bool = True,
    force: bool = False,
    batch: int = 2,
    external_data_threshold: int = TWO_GB,
    progress: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export ``converted`` to ``path`` with dynamic batch, height and width, and check it.

    Weights above ``external_data_threshold`` bytes go to ``<path>.data`` beside the model. The
    files appear at ``path`` only after every check passed; an existing file is replaced only
    with ``force``.
    """
    say = progress or (lambda message: None)
    target = Path(path)
    if opset < 18:
        raise ExportError(f"opset {opset} is too old: fc2conv exports opset 18 or newer")
    if batch < 2:
        raise ExportError("export uses an example batch of at least 2, so the batch stays dynamic")
    if target.suffix != ".onnx":
        raise ExportError(f"{target}: the output file name must end in .onnx")
    data_target = target.with_name(target.name + ".data")
    if not force:
        for existing in (target, data_target):
            if existing.exists():
                raise ExportError(
                    f"{existing} already exists; pass --force (force=True) to replace it"
                )
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"{target}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ExportError(f"{target}: folder {folder} is not writable")
    weight_bytes = sum(p.numel() * p.element_size() for p in converted.parameters())
    weight_bytes += sum(b.numel() * b.element_size() for b in converted.buffers())
    external = weight_bytes > external_data_threshold
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=folder))
    try:
        say(f"exporting with torch.onnx (dynamo, opset {opset})")
        try:
            program = _export_program(converted, opset, batch)
        except Fc2ConvError:
            raise
        except Exception as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ExportError(
                f"{converted.name}: torch.onnx.export failed: {first_line} "
                "(--debug shows the whole error)"
            ) from exc
        for key, value in metadata_for(converted).items():
            program.model.metadata_props[key] = value
        staged = staging / target.name
        say("writing " + ("model and external weights" if external else "model"))
        program.save(str(staged), external_data=external)
        del program
        staged_data = staging / data_target.name
        checks = _check(staged, converted, rtol, batch, say) if check else []
        if external and not staged_data.exists():
            raise ExportError(f"{converted.name}: expected external weights at {staged_data}")
        if staged_data.exists():
            os.replace(staged_data, data_target)
        elif data_target.exists():
            data_target.unlink()  # a stale weights file from an earlier, larger export
        os.replace(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(
        target, target.stat().st_size, data_target if external else None, opset, checks
    )
