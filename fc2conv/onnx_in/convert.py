"""ONNX classifier in, fully convolutional ONNX model out: read, rewrite, measure the geometry,
check, write. No PyTorch anywhere on this path."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Fc2ConvError, InputSizeError, UnsupportedModelError
from ..geometry import Geometry, measure_geometry, padding_note
from ..progress import SILENT, Progress
from .checks import OnnxCheck, check_converted
from .graph import OnnxGraph, load, skeleton, static_shapes
from .rewrite import NCHW, Flat, Map, Rewrite, Step, Vec

__all__ = ["OnnxConversion", "convert_onnx"]

IMAGE = "images"
TWO_GB = 2 * 1024**3


@dataclass
class OnnxConversion:
    """What :func:`convert_onnx` made: the converted ``model`` (an ``onnx.ModelProto``), the
    rewrite ``plan``, the ``geometry``, the ``checks`` it passed (empty without verify) and
    the ``path`` it was written to (None when not written)."""

    name: str
    model: Any
    plan: list[Step]
    geometry: Geometry
    outputs: list[dict[str, Any]]
    checks: list[OnnxCheck] = field(default_factory=list)
    path: Path | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  #: what the cells mean beyond the plan

    def __str__(self) -> str:
        lines = [f"{self.name}: {len(self.plan)} rewrites", *(f"  {step}" for step in self.plan)]
        lines.extend(f"note: {note}" for note in self.notes)
        lines.append(f"geometry: {self.geometry}")
        for check in self.checks:
            size = f"{check.height}x{check.width} → {check.map_size[0]}x{check.map_size[1]} map"
            if check.relative_error is not None:
                size += f", relative error {check.relative_error:.1e} against the original"
            lines.append(f"checked in onnxruntime at {size}")
        if self.path is not None:
            lines.append(f"wrote {self.path} ({self.seconds:.1f} s)")
        return "\n".join(lines)


def convert_onnx(
    source: str | os.PathLike | Any,
    out: str | os.PathLike | None = None,
    *,
    input_size: tuple[int, int] | None = None,
    input_channels: int | None = None,
    classes: list[str] | str | os.PathLike | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    bgr: bool = False,
    opset: int | None = None,
    rtol: float = 1e-4,
    verify: bool = True,
    force: bool = False,
    progress: Progress = SILENT,
) -> OnnxConversion:
    """Convert an ONNX classifier (a path or an ``onnx.ModelProto``) into a fully
    convolutional model with dynamic batch, height and width, and write it to ``out`` if given.

    ``input_size`` is the canonical (height, width), needed where the file does not fix it;
    ``input_channels`` where the input does not tell; ``classes`` (a list or a file with one
    name per line), ``mean`` and ``std`` (per channel, for images in [0, 1], in the model's channel order) and ``bgr`` (the
    model takes its channels in BGR order, as Caffe models do) go into the metadata that
    ``heatmap`` and ``detect`` read; ``opset`` converts the result to a newer
    opset (default: the file's own). With ``verify``, onnxruntime runs the original and the
    converted model at the canonical size (relative error ≤ ``rtol``) and the converted one at
    two more sizes (see :mod:`.checks`); the file is put in place only when all checks pass.
    """
    from ..export.onnx_file import check_target, commit, staging_folder
    from ..sources import read_class_names

    started = time.perf_counter()
    target = Path(out) if out is not None else None
    if target is not None:
        check_target(target, force)
    names = read_class_names(classes) if classes is not None else None
    with progress.step("reading the ONNX model"):
        model, name = load(source)
        original = _original_for_checks(source, model) if verify else b""
        graph = OnnxGraph(model, name, input_channels)
    preprocessing = {"mean": mean, "std": std, "channel_order": "BGR" if bgr else None}
    for key in ("mean", "std"):
        values = preprocessing[key]
        if values is not None and len(values) != graph.input.channels:
            raise Fc2ConvError(
                f"{name}: {len(values)} {key} values for an input of {graph.input.channels} "
                f"channels; give one per channel (--{key} with {graph.input.channels} numbers)"
            )
    if bgr and graph.input.channels != 3:
        raise Fc2ConvError(
            f"{name}: BGR order for an input of {graph.input.channels} channels; --bgr is for "
            "3-channel models"
        )
    with progress.step("converting"):
        converted, plan, outputs, canonical = _rewrite(graph, input_size)
        geometry = _measure(converted, graph, canonical)
    count = outputs[0]["channels"]
    if names is not None and len(names) != count:
        raise Fc2ConvError(f"{name}: {len(names)} class names for a model with {count} classes")
    _set_metadata(converted, name, geometry, outputs, graph, names, preprocessing)
    if opset is not None:
        converted = _upgrade(converted, graph.opset, opset, name)
    result = OnnxConversion(name, converted, plan, geometry, outputs, notes=padding_notes(graph))
    if target is None and not verify:
        return result
    folder = staging_folder(target) if target is not None else Path(tempfile.mkdtemp())
    try:
        staged = folder / (target.name if target is not None else "converted.onnx")
        with progress.step("writing the converted model"):
            _save(converted, staged)
        if verify:
            with progress.step("checking against the original in onnxruntime") as say:
                endings = [output["ending"] for output in outputs]
                result.checks = check_converted(
                    original, staged, graph.input, geometry, endings, rtol, name, say
                )
        if target is not None:
            commit(staged, target)
            result.path = target
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def _original_for_checks(source: Any, model: Any) -> str | bytes:
    """What onnxruntime opens as the original: its file, or the serialized model."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return bytes(model.SerializeToString())


def padding_notes(graph: OnnxGraph) -> list[str]:
    """The plan's note on the nodes that pad or pool with ceil_mode (none: no note)."""
    from .rewrite import attribute, describe

    def pads(node: Any) -> bool:
        if node.op_type == "Pad":
            return True
        if node.op_type not in ("Conv", "MaxPool", "AveragePool", "LpPool"):
            return False
        return bool(
            any(attribute(node, "pads", []))
            or attribute(node, "auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER")
            or attribute(node, "ceil_mode", 0)
        )

    padded = [describe(node) for node in graph.model.graph.node if pads(node)]
    return [padding_note(padded)] if padded else []


def _rewrite(
    graph: OnnxGraph, input_size: tuple[int, int] | None
) -> tuple[Any, list[Step], list[dict[str, Any]], tuple[int, int]]:
    import onnx
    from onnx import helper

    image = graph.input
    fixed = image.fixed_size
    if input_size is not None and fixed is not None and tuple(input_size) != fixed:
        raise InputSizeError(
            f"{graph.name}: its input {image.name} is fixed at {fixed[0]}x{fixed[1]}, the size "
            f"it classifies; --input-size {input_size[0]}x{input_size[1]} cannot change that: "
            "leave --input-size out"
        )
    canonical = input_size or fixed
    if canonical is None:
        raise InputSizeError(
            f"{graph.name}: input {image.name} has no fixed height and width; pass the size "
            "the classifier was trained at with --input-size HxW (input_size=(h, w) in Python)"
        )
    model = graph.model
    for output in model.graph.output:
        if output.name == image.name:
            raise UnsupportedModelError(f"{graph.name}: the model returns its input")
    value = next(value for value in model.graph.input if value.name == image.name)
    if image.channels_last:  # a new N×C×H×W input, transposed to the file's layout
        transpose = helper.make_node("Transpose", [IMAGE], [image.name], perm=[0, 2, 3, 1])
        model.graph.node.insert(0, transpose)
        model.graph.input.remove(value)
        dims: list[int | str] = ["N", image.channels, "H", "W"]
        model.graph.input.append(
            helper.make_tensor_value_info(IMAGE, value.type.tensor_type.elem_type, dims)
        )
    else:
        value.name = IMAGE
        for node in model.graph.node:
            node.input[:] = [IMAGE if name == image.name else name for name in node.input]
    batch = image.fixed_batch or 1
    height, width = canonical
    shapes = _shapes(model, [batch, image.channels, height, width], graph.name)
    rewrite = Rewrite(graph, shapes)
    rewrite.run(IMAGE)

    finals, outputs = [], []
    for value in model.graph.output:
        tensor, channels = _class_map(rewrite, value.name, graph.name)
        finals.append(tensor)
        ending = rewrite.endings.get(value.name, "scores")
        outputs.append(
            {"name": value.name, "channels": channels, "class_map": True, "ending": ending}
        )
    kept_nodes = list(rewrite.nodes)
    for value, tensor in zip(model.graph.output, finals, strict=True):
        if tensor != value.name:
            kept_nodes.append(helper.make_node("Identity", [tensor], [value.name], name=value.name))
    converted = onnx.ModelProto()
    converted.ir_version = model.ir_version
    converted.opset_import.extend(model.opset_import)
    converted.producer_name = "fc2conv"
    converted.metadata_props.extend(
        prop for prop in model.metadata_props if not prop.key.startswith("fc2conv.")
    )
    new = converted.graph
    new.name = model.graph.name
    live = _live_nodes(kept_nodes, [value.name for value in model.graph.output])
    new.node.extend(live)
    used = {name for node in live for name in node.input}
    new.initializer.extend(t for t in model.graph.initializer if t.name in used)
    new.initializer.extend(t for t in rewrite.initializers if t.name in used)
    new.input.append(
        helper.make_tensor_value_info(
            IMAGE, onnx.TensorProto.FLOAT, ["batch", image.channels, "height", "width"]
        )
    )
    for value, info in zip(model.graph.output, outputs, strict=True):
        new.output.append(
            helper.make_tensor_value_info(
                value.name,
                value.type.tensor_type.elem_type or onnx.TensorProto.FLOAT,
                ["batch", info["channels"], "rows", "cols"],
            )
        )
    return converted, rewrite.steps, outputs, (height, width)


def _class_map(rewrite: Rewrite, name: str, model: str) -> tuple[str, int]:
    """The tensor of the converted graph that holds output ``name`` as a class map, and its
    number of classes; refuses outputs that are not one class vector per image."""
    kind = rewrite.kinds.get(name)
    shape = rewrite.shapes.get(name) or []
    described = "x".join(map(str, shape)) or "unknown shape"
    if isinstance(kind, Map):
        roles = kind.roles
        if roles == NCHW and shape[2:] == [1, 1]:  # already one cell of a convolutional head
            return name, shape[1]
        raise UnsupportedModelError(
            f"{model}: output {name} ({described}) is a map, not a class vector: the model is "
            "already fully convolutional (a segmentation or detection model?)"
        )
    if isinstance(kind, Flat):
        height, width = (kind.dims[kind.roles.index(role)] for role in ("H", "W"))
        if (height, width) == (1, 1):
            return rewrite.nchw(kind.source, kind.roles), int(np.prod(kind.dims[1:]))
        raise UnsupportedModelError(
            f"{model}: output {name} ({described}) is a flattened feature map, not a class vector"
        )
    if isinstance(kind, Vec) and len(shape) in (2, 4) and all(s == 1 for s in shape[2:]):
        return kind.tensor, shape[1]
    raise UnsupportedModelError(
        f"{model}: output {name} ({described}) is not a class vector (N×classes or N×classes×1×1)"
    )


def _live_nodes(nodes: list[Any], outputs: list[str]) -> list[Any]:
    """The nodes the outputs depend on, in their order."""
    needed = set(outputs)
    live = []
    for node in reversed(nodes):
        if any(output in needed for output in node.output):
            live.append(node)
            needed.update(name for name in node.input if name)
    return live[::-1]


def _shapes(model: Any, shape: list[int], name: str) -> dict[str, list[int] | None]:
    """Every tensor's shape at the canonical size: onnx shape inference, and where it cannot
    follow a shape computed in the graph (``Shape`` → ``Gather`` → ``Concat`` at older
    opsets), one run of the model in onnxruntime."""
    try:
        shapes = static_shapes(skeleton(model), IMAGE, shape)
    except Exception as exc:
        raise UnsupportedModelError(
            f"{name}: onnx shape inference fails at {shape[2]}x{shape[3]} ({exc}); "
            "check --input-size"
        ) from exc
    unknown = [
        output
        for node in model.graph.node
        for output in node.output
        if output and shapes.get(output) is None
    ]
    if unknown:
        shapes.update(_run_shapes(model, shape, unknown, name))
    return shapes


def _run_shapes(
    model: Any, shape: list[int], names: list[str], name: str
) -> dict[str, list[int] | None]:
    import onnx
    from onnx import helper

    from ..runtime import open_session

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_empty_tensor_value_info(value) for value in names)
    try:
        session = open_session(probe.SerializeToString(), optimization="basic")
        image = np.zeros(shape, np.float32)
        values = session.run(names, {IMAGE: image})
    except Exception as exc:
        raise UnsupportedModelError(
            f"{name}: the model does not run at {shape[2]}x{shape[3]} in onnxruntime "
            f"({str(exc).splitlines()[0]}); check --input-size"
        ) from exc
    return {value: list(np.shape(result)) for value, result in zip(names, values, strict=True)}


def _measure(converted: Any, graph: OnnxGraph, canonical: tuple[int, int]) -> Geometry:
    """The geometry, from onnx shape inference of the converted graph at many sizes; where
    inference cannot follow a shape computed in the graph, from runs in onnxruntime (sizes up
    to 256 pixels above the canonical one: enough for strides up to 256)."""
    light = skeleton(converted)
    output = converted.graph.output[0].name
    channels = graph.input.channels

    def inferred(height: int, width: int) -> tuple[int, int] | None:
        try:
            shapes = static_shapes(light, IMAGE, [1, channels, height, width])
        except Exception:
            return None
        shape = shapes.get(output)
        if shape is None or len(shape) != 4 or min(shape[2:]) < 1:
            return None
        return shape[2], shape[3]

    if inferred(*canonical) is not None:
        return measure_geometry(inferred, canonical, "window", graph.name)
    from ..runtime import open_session

    session = open_session(converted.SerializeToString(), optimization="basic", memory_arena=False)

    def measured(height: int, width: int) -> tuple[int, int] | None:
        image = np.zeros((1, channels, height, width), np.float32)
        try:
            shape = session.run([output], {IMAGE: image})[0].shape
        except Exception:
            return None
        return (shape[2], shape[3]) if min(shape[2:]) >= 1 else None

    return measure_geometry(measured, canonical, "window", graph.name, far_size=256)


def _set_metadata(
    converted: Any,
    name: str,
    geometry: Geometry,
    outputs: list[dict[str, Any]],
    graph: OnnxGraph,
    classes: list[str] | None,
    preprocessing: dict[str, Any],
) -> None:
    from .. import __version__
    from ..export.onnx_file import encode_metadata

    values = {
        "version": __version__,
        "model": name,
        "mode": "window",
        "source": "onnx",
        "outputs": outputs,
        "geometry": geometry.as_dict(),
        "input_channels": graph.input.channels,
        "classes": classes,
        **preprocessing,
    }
    for key, value in encode_metadata(values).items():
        prop = converted.metadata_props.add()
        prop.key, prop.value = key, value


def _upgrade(model: Any, current: int, opset: int, name: str) -> Any:
    from onnx import version_converter

    if opset < current:
        raise Fc2ConvError(f"{name}: the model uses opset {current}; --opset {opset} is older")
    if opset == current:
        return model
    try:
        return version_converter.convert_version(model, opset)
    except Exception as exc:
        raise Fc2ConvError(
            f"{name}: onnx's version converter cannot take the model from opset {current} to "
            f"{opset} ({exc}); leave --opset out to keep opset {current}"
        ) from exc


def _save(model: Any, path: Path) -> None:
    import onnx

    large = model.ByteSize() > TWO_GB - 64 * 1024**2
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=large,
        location=path.name + ".data" if large else None,
    )
