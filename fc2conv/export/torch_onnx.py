"""The PyTorch side of the export: torch.onnx with dynamic batch, height and width, fc2conv's
metadata, and the reference outputs the written file is checked against.

``stage`` writes into a staging folder; :mod:`.isolated` checks the file there (in a process
without PyTorch) and only then moves it into place. Weights are written once, streamed from the
PyTorch tensors into an external-data file, and a single-file model is assembled from it piece by
piece, so no step holds a second copy of them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..compare import relative_error
from ..conversion import FullyConvolutionalModel
from ..conversion.tracing import output_leaves
from ..errors import ExportError, Fc2ConvError
from ..geometry import Geometry
from .onnx_file import (
    CASES_FILE,
    METADATA_PREFIX,
    Case,
    data_path,
    embed_external_data,
    save_cases,
)

__all__ = ["INPUT_NAME", "TWO_GB", "check_sizes", "metadata_for", "reference_cases", "stage"]

TWO_GB = 2 * 1024**3
INPUT_NAME = "images"


def check_sizes(geometry: Geometry) -> list[tuple[int, int]]:
    """Canonical size, a non-square size off the stride grid, and a 3x2-cell size on the grid.

    The two larger sizes stay close to the canonical one: a size's activations are the largest
    allocation of an export's checks, and these two already cover maps of several cells in both
    directions, on and off the stride grid.
    """
    height, width = geometry.canonical_size
    stride_h, stride_w = geometry.stride
    odd = (height + 37, width + 101)  # 261x325 for a 224x224 model
    if odd[0] % stride_h == 0:
        odd = (odd[0] + 1, odd[1])
    if odd[1] % stride_w == 0:
        odd = (odd[0], odd[1] + 1)
    return [(height, width), odd, (height + 2 * stride_h, width + stride_w)]


def metadata_for(converted: FullyConvolutionalModel) -> dict[str, str]:
    """The metadata_props a consumer needs: geometry, classes, preprocessing, versions."""
    from .. import __version__

    values: dict[str, Any] = {
        **converted.metadata,  # classes, mean, std and any model-specific keys
        "version": __version__,
        "model": converted.name,
        "mode": converted.mode,
        "geometry": converted.geometry.as_dict(),
        "input_channels": converted.input_channels,
    }
    return {
        METADATA_PREFIX + key: value if isinstance(value, str) else json.dumps(value)
        for key, value in values.items()
        if value is not None
    }


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


def reference_cases(converted: FullyConvolutionalModel, batch: int) -> list[Case]:
    """Seeded inputs at ``check_sizes``, the PyTorch outputs they give, and PyTorch's own float32
    noise on them (the same images evaluated one at a time and as one batch)."""
    generator = torch.Generator().manual_seed(0)
    cases = []
    for height, width in check_sizes(converted.geometry):
        images = torch.randn(batch, converted.input_channels, height, width, generator=generator)
        with torch.no_grad():
            parts = [output_leaves(converted(images[i : i + 1])) for i in range(batch)]
            together = output_leaves(converted(images))
        outputs = [torch.cat(list(leaves)).numpy() for leaves in zip(*parts, strict=True)]
        noise = max(
            relative_error(single, batched.numpy())
            for single, batched in zip(outputs, together, strict=True)
        )
        cases.append(Case(images.numpy(), outputs, noise))
    return cases


def stage(
    converted: FullyConvolutionalModel,
    staging: Path,
    name: str,
    *,
    opset: int = 18,
    batch: int = 2,
    external_data_threshold: int = TWO_GB,
    cases: bool = True,
    say: Any = lambda detail: None,
) -> Path:
    """Export ``converted`` as ``staging/name`` (plus ``name.data`` above the threshold) and,
    with ``cases``, store the check cases beside it (``CASES_FILE``). Returns the model's path."""
    if opset < 18:
        raise ExportError(f"opset {opset} is too old: fc2conv exports opset 18 or newer")
    if batch < 2:
        raise ExportError("export uses an example batch of at least 2, so the batch stays dynamic")
    if cases:  # first: the exporter leaves memory behind that would add to their peak
        say("computing PyTorch outputs for the checks")
        save_cases(staging / CASES_FILE, reference_cases(converted, batch))
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
    # The exporter streams the weights from the PyTorch tensors into an external-data file
    # without copies; a single file is then assembled from it in the same way.
    separate = staging / "external"
    separate.mkdir()
    say("writing the model")
    program.save(str(separate / name), external_data=True)
    del program
    staged = staging / name
    weights = data_path(separate / name)
    if weights.exists() and weights.stat().st_size > external_data_threshold:
        os.replace(weights, data_path(staged))
        os.replace(separate / name, staged)
    else:
        embed_external_data(separate / name, staged)
    shutil.rmtree(separate)
    return staged
