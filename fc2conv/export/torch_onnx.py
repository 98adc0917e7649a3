"""The PyTorch side of the export: torch.onnx with dynamic batch, height and width, fc2conv's
metadata, and the reference outputs the written file is checked against.

``stage`` writes into a staging folder; :mod:`.isolated` checks the file there (in a process
without PyTorch) and only then moves it into place. The weights go to disk once, straight from
the PyTorch tensors' memory into the file (see :func:`.onnx_file.write_single_file`), so no step
holds a second copy of them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..compare import relative_error
from ..conversion import FullyConvolutionalModel
from ..conversion.tracing import output_leaves
from ..errors import ExportError, Fc2ConvError
from ..geometry import check_sizes
from .onnx_file import (
    CASES_FILE,
    TWO_GB,
    Case,
    data_path,
    fc2conv_metadata,
    save_cases,
    write_single_file,
)

__all__ = ["INPUT_NAME", "export_original", "metadata_for", "reference_cases", "stage"]

INPUT_NAME = "images"


def metadata_for(converted: FullyConvolutionalModel) -> dict[str, str]:
    """The metadata_props a consumer needs: geometry, classes, preprocessing, versions."""
    return fc2conv_metadata(
        model=converted.name,
        mode=converted.mode,
        outputs=[asdict(output) for output in converted.outputs],
        geometry=converted.geometry,
        input_channels=converted.input_channels,
        details=converted.metadata,  # classes, mean, std and any model-specific keys
    )


def _export_program(converted: FullyConvolutionalModel, opset: int, batch: int) -> Any:
    height, width = converted.geometry.canonical_size
    example = (torch.randn(batch, converted.input_channels, height, width),)
    dim = torch.export.Dim
    dynamic = ({0: dim.DYNAMIC, 2: dim.DYNAMIC, 3: dim.DYNAMIC},)
    outputs = [output.name for output in converted.outputs] or None
    program = _torch_onnx(converted.graph_module.eval(), example, opset, dynamic, outputs)
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


def _torch_onnx(
    module: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    opset: int,
    dynamic: tuple[dict[int, Any], ...],
    output_names: list[str] | None,
) -> Any:
    """torch.onnx's dynamo export of ``module`` on ``example``, optimised on the IR."""
    # torch.export logs warnings about shape guards it cannot simplify; the checks that follow
    # the export are what tell whether it is right
    guards = logging.getLogger("torch.fx.experimental.symbolic_shapes")
    level = guards.level
    guards.setLevel(logging.ERROR)
    try:
        program = torch.onnx.export(
            module,
            example,
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=output_names,
            dynamic_shapes=dynamic,
            verbose=False,
            optimize=False,
        )
    finally:
        guards.setLevel(level)
    if program is not None:
        # The exporter's own optimize=True runs onnx's shape inference, which serializes the
        # whole model with its weights (2.4 s for VGG-16); the IR's own shape handling gives the
        # same graph.
        import onnxscript.optimizer

        onnxscript.optimizer.optimize_ir(program.model, onnx_shape_inference=False)
    return program


def export_original(
    model: torch.nn.Module,
    size: tuple[int, int],
    channels: int,
    path: Path,
    *,
    opset: int = 18,
    batch: int = 2,
) -> None:
    """Export the classifier ``model`` as it is, at its canonical ``size`` (fixed) with a dynamic
    batch, to ``path``: the graph that the ONNX rules then convert, for a forward that torch.fx
    cannot trace. A forward that branches on the input's size takes, at that size, the branch
    every window takes. Errors do not name the model: the caller's message does."""
    example = (torch.randn(batch, channels, *size),)
    try:
        program = _torch_onnx(model.eval(), example, opset, ({0: torch.export.Dim.DYNAMIC},), None)
    except Exception as exc:
        cause: BaseException = exc
        while cause.__cause__ is not None:  # torch.onnx wraps what torch.export raised
            cause = cause.__cause__
        first_line = (str(cause).strip().splitlines() or [""])[0][:300]
        raise ExportError(
            f"torch.onnx cannot export it ({type(cause).__name__}: {first_line})"
        ) from exc
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    write_model(program.model, path, TWO_GB)


def _name_map_axes(model: Any) -> None:
    """Give every 4-D output symbolic batch/rows/cols axes, and drop the shapes the exporter
    recorded for intermediate values: some hold the canonical 1x1 where the map is dynamic, and
    onnxruntime, inferring from them, warns on every run at another size. It infers the shapes
    it needs itself."""
    import onnx_ir as ir

    outputs = set(model.graph.outputs)
    for node in model.graph:
        for value in node.outputs:
            if value not in outputs:
                value.shape = None
    for index, value in enumerate(model.graph.outputs):
        if value.shape is not None and len(value.shape) == 4:
            suffix = "" if index == 0 else f"_{index}"
            value.shape = ir.Shape(["batch", value.shape[1], f"rows{suffix}", f"cols{suffix}"])


def reference_cases(converted: FullyConvolutionalModel, batch: int) -> list[Case]:
    """Seeded inputs at ``check_sizes`` and the PyTorch outputs they give: a batch of ``batch``
    images at the canonical size (so the checks see the batch axis work), one image at the
    larger sizes (so they see the map axes work, at half the cost).

    Each case also carries PyTorch's own float32 noise, measured at the canonical size: how
    much evaluations that differ only in the order of their float32 sums disagree (the batch at
    once against one image at a time, and oneDNN's convolutions against PyTorch's own, which
    sum in another order as onnxruntime's do). On deep networks it reaches 1e-4 and more."""
    generator = torch.Generator().manual_seed(0)
    cases = []
    noise = 0.0
    for index, (height, width) in enumerate(check_sizes(converted.geometry)):
        count = batch if index == 0 else 1
        images = torch.randn(count, converted.input_channels, height, width, generator=generator)
        with torch.no_grad():
            outputs = [leaf.numpy() for leaf in output_leaves(converted(images))]
            if index == 0:
                single = [output_leaves(converted(images[i : i + 1])) for i in range(count)]
                with warnings.catch_warnings():  # torch's note about its TF32 setting
                    warnings.simplefilter("ignore")
                    with torch.backends.mkldnn.flags(enabled=False):
                        native = output_leaves(converted(images[:1]))
                for number, output in enumerate(outputs):
                    alone = torch.cat([leaves[number] for leaves in single]).numpy()
                    noise = max(noise, relative_error(alone, output))
                    noise = max(noise, relative_error(alone[:1], native[number].numpy()))
        cases.append(Case(images.numpy(), outputs, noise))
    return cases


def _weights_as_bytes(array: np.ndarray) -> np.ndarray:
    """The bytes of ``array`` as a flat uint8 view (no copy where it is contiguous)."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def write_model(model: Any, staged: Path, external_data_threshold: int) -> None:
    """Write an onnx_ir model as ``staged``, its weights taken straight from the tensors' memory:
    in the file itself, or in ``staged.data`` beside it when they exceed the threshold (2 GB is
    protobuf's limit for one file)."""
    import onnx
    import onnx_ir as ir

    location = data_path(staged).name
    buffers: dict[int, np.ndarray] = {}
    size = 0
    for name, value in model.graph.initializers.items():
        tensor = value.const_value
        if tensor is None or tensor.nbytes < 128:
            continue  # axes and shapes stay inline: shape inference reads their values
        if tensor.nbytes >= 65536:
            size += -size % 4096  # page-aligned, so that onnxruntime can map large weights
        weights = _weights_as_bytes(tensor.numpy())
        buffers[size] = weights
        value.const_value = ir.ExternalTensor(
            location, size, weights.nbytes, tensor.dtype, shape=tensor.shape, name=name
        )
        size += weights.nbytes
    proto = ir.serde.serialize_model(model)

    def read(where: str, offset: int, length: int) -> Iterator[np.ndarray]:
        yield buffers[offset]

    if size <= external_data_threshold:
        write_single_file(proto, staged, read)
        return
    with open(data_path(staged), "wb") as file:
        for offset in sorted(buffers):
            file.write(b"\0" * (offset - file.tell()))
            file.write(buffers[offset].data)
    onnx.save(proto, str(staged))


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
    say("writing the model")
    staged = staging / name
    write_model(program.model, staged, external_data_threshold)
    return staged
