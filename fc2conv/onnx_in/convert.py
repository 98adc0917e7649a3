"""ONNX classifier in, fully convolutional ONNX model out: read, rewrite, measure the geometry,
check, write. No PyTorch anywhere on this path."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Fc2ConvError, InputSizeError, UnsupportedModelError
from ..geometry import Geometry, measure_geometry, padding_note
from ..partial_windows import Borders, border_note, last_window
from ..progress import SILENT, Progress
from .borders import exact_borders, may_cut
from .checks import OnnxCheck, check_converted
from .graph import OnnxGraph, load, over_protobuf_limit, skeleton, static_shapes
from .kinds import NCHW, Flat, Trunk, Vec
from .normalise import identity_gathers
from .planner import OnnxPlan, apply, plan_graph
from .rules import ONNX_RULES, Build, OnnxRule
from .rules.base import attribute, describe
from .surgery import assemble, live_nodes, with_nchw_input

__all__ = ["OnnxConversion", "convert_onnx"]

IMAGE = "images"


@dataclass
class OnnxConversion:
    """What :func:`convert_onnx` made: the converted ``model`` (an ``onnx.ModelProto``), the
    rewrite ``plan``, the ``geometry``, the ``checks`` it passed (empty without verify) and
    the ``path`` it was written to (None when not written)."""

    name: str
    model: Any
    plan: OnnxPlan
    geometry: Geometry
    outputs: list[dict[str, Any]]
    checks: list[OnnxCheck] = field(default_factory=list)
    path: Path | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  #: what the cells mean beyond the plan

    def __str__(self) -> str:
        lines = [str(self.plan), *(f"note: {note}" for note in self.notes)]
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
    output: str | int | None = None,
    rules: tuple[OnnxRule, ...] = ONNX_RULES,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
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
    ``output`` (a name or an index) chooses the class output of a file with several; ``rules``
    is the ordered rule list (:data:`fc2conv.onnx_in.rules.ONNX_RULES`; pass your own to add
    one). ``name`` is what messages and the metadata call the model (default: its path), and
    ``metadata`` holds further keys for the file's metadata (a PyTorch source's weights, say).
    A node that no rule converts exactly is refused with every other such node in one
    :class:`UnsupportedModelError`.
    """
    from ..export.onnx_file import check_target, staged
    from ..sources import read_class_names

    started = time.perf_counter()
    target = Path(out) if out is not None else None
    if target is not None:
        check_target(target, force)
    names = read_class_names(classes) if classes is not None else None
    with progress.step("reading the ONNX model"):
        model, path_name = load(source)
        name = name or path_name
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
        converted, plan, outputs, canonical = _rewrite(graph, input_size, output, rules)
        borders = Borders()
        if may_cut(converted):
            shape = [1, graph.input.channels, *canonical]
            borders = exact_borders(converted, IMAGE, _shapes(converted, shape, name))
        geometry = _measure(converted, graph, canonical)
    count = outputs[0]["channels"]
    if names is not None and len(names) != count:
        raise Fc2ConvError(f"{name}: {len(names)} class names for a model with {count} classes")
    details = {"source": "onnx", **(metadata or {}), "classes": names, **preprocessing}
    _set_metadata(converted, name, geometry, outputs, graph, details)
    if opset is not None:
        converted = _upgrade(converted, graph.opset, opset, name)
    notes = padding_notes(plan, borders)
    if mean is None or std is None:
        from ..export.onnx_file import UNKNOWN_PREPROCESSING

        notes.append(UNKNOWN_PREPROCESSING)
    result = OnnxConversion(name, converted, plan, geometry, outputs, notes=notes)
    if target is None and not verify:
        return result
    with staged(target, force) as path:
        with progress.step("writing the converted model"):
            external = _save(converted, path)
        if verify:
            with progress.step("checking against the original in onnxruntime") as say:
                result.checks = check_converted(
                    original, path, graph.input, geometry, outputs, rtol, name, say
                )
        if external:  # saving moved the weights out of the model: read them back in
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(converted, str(path.parent))
    result.path = target
    result.seconds = time.perf_counter() - started
    return result


def _original_for_checks(source: Any, model: Any) -> str | bytes:
    """What onnxruntime opens as the original: its file, or the serialized model."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return bytes(model.SerializeToString())


def padding_notes(the_plan: OnnxPlan, borders: Borders) -> list[str]:
    """The notes on the nodes through which a cell reads beyond its window (those that pad, and
    the ceil_mode pools whose last window is partial at the canonical size and that
    ``borders`` did not make exact), and on the borders made exact or left (none: no note)."""
    exact = {*(borders.pools if borders.exact else ()), *borders.trimmed}
    rewritten = {i for i, step in the_plan.steps.items() if step.changes_graph}  # a whole-map pool
    beyond = [
        describe(node)
        for index, node in enumerate(the_plan.ctx.graph.model.graph.node)
        if (_pads(node) or _partial_pool(the_plan, node))
        and describe(node) not in exact
        and index not in rewritten
    ]
    notes = [padding_note(beyond)] if beyond else []
    if borders.pools:
        notes.append(border_note(borders, not beyond))
    return notes


def _pads(node: Any) -> bool:
    if node.op_type == "Pad":
        return True
    if node.op_type not in ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"):
        return False
    return bool(
        any(attribute(node, "pads", []))
        or attribute(node, "auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER")
    )


def _partial_pool(the_plan: OnnxPlan, node: Any) -> bool:
    """Whether ``node`` is a ceil_mode pool whose last window is partial at the canonical size
    (or of a size unknown)."""
    if node.op_type not in ("MaxPool", "AveragePool", "LpPool") or not attribute(
        node, "ceil_mode", 0
    ):
        return False
    before, after = the_plan.ctx.shape(node.input[0]), the_plan.ctx.shape(node.output[0])
    if before is None or after is None or len(before) != 4 or len(after) != 4:
        return True
    kernel = attribute(node, "kernel_shape", [])
    stride = attribute(node, "strides", [1, 1])
    last = last_window((before[2], before[3]), (after[2], after[3]), (stride[0], stride[1]))
    return any(m < k for m, k in zip(last, kernel, strict=False))


def _canonical_size(graph: OnnxGraph, input_size: tuple[int, int] | None) -> tuple[int, int]:
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
            "the classifier was trained at with --input-size HxW"
        )
    return int(canonical[0]), int(canonical[1])


def _rewrite(
    graph: OnnxGraph,
    input_size: tuple[int, int] | None,
    output: str | int | None,
    rules: tuple[OnnxRule, ...],
) -> tuple[Any, OnnxPlan, list[dict[str, Any]], tuple[int, int]]:
    """Plan and apply the rules: the converted model, its plan, its outputs' descriptions and
    the canonical size."""
    image = graph.input
    canonical = _canonical_size(graph, input_size)
    model = graph.model
    for value in model.graph.output:
        if value.name == image.name:
            raise UnsupportedModelError(f"{graph.name}: the model returns its input")
    with_nchw_input(model, image, IMAGE)
    graph.index_producers()
    shape = [image.fixed_batch or 1, image.channels, *canonical]
    views = identity_gathers(graph, IMAGE, shape)
    the_plan = plan_graph(graph, _shapes(model, shape, graph.name), IMAGE, rules)
    if views:
        the_plan.notes.append(
            f"{views} as_strided view(s) that read every value in place (Reshape to 1-D, then "
            "Gather) read the tensor itself"
        )
    chosen = _chosen_outputs(the_plan, output)
    needed = {id(node) for node in live_nodes(list(model.graph.node), [v.name for v in chosen])}
    for index in [i for i, d in the_plan.declines.items() if id(d.node) not in needed]:
        del the_plan.declines[index]  # in a branch of an output that is not converted
    the_plan.raise_declines()
    build = apply(the_plan)
    outputs, infos = [], []
    for value in chosen:
        channels = _class_map(the_plan, build, value.name)
        ending = the_plan.ctx.endings.get(value.name, "scores")
        infos.append((value, channels))
        outputs.append(
            {"name": value.name, "channels": channels, "class_map": True, "ending": ending}
        )
    converted = assemble(model, build.nodes, build.initializers, IMAGE, image.channels, infos)
    return converted, the_plan, outputs, canonical


def _is_class_vector(the_plan: OnnxPlan, name: str) -> bool:
    """Whether output ``name`` holds one vector per image (its converted form: a class map)."""
    kind = the_plan.ctx.kind(name)
    shape = the_plan.ctx.shape(name) or []
    if isinstance(kind, Vec):
        others = [size for axis, size in enumerate(shape) if axis not in (0, kind.axis)]
        return len(shape) in (2, 4) and all(size == 1 for size in others)
    if isinstance(kind, Flat):
        return kind.one_cell
    return isinstance(kind, Trunk) and kind.roles == NCHW and shape[2:] == [1, 1]


def _chosen_outputs(the_plan: OnnxPlan, output: str | int | None) -> list[Any]:
    """The graph outputs to convert: ``output`` (a name or an index), else the only output, else
    the only one of several that is a class vector; several candidates are refused, named, for
    the caller to choose."""
    values = list(the_plan.ctx.graph.model.graph.output)
    name = the_plan.name

    def described(value: Any) -> str:
        shape = the_plan.ctx.shape(value.name)
        return f"{value.name} ({'x'.join(map(str, shape)) if shape else 'unknown shape'})"

    if output is not None:
        names = [value.name for value in values]
        index: Any = names.index(output) if output in names else output
        if isinstance(index, str) and index.isdigit():
            index = int(index)
        if not isinstance(index, int) or not 0 <= index < len(values):
            raise Fc2ConvError(
                f"{name}: no output {output}; its outputs are "
                f"{', '.join(described(v) for v in values)}"
            )
        return [values[index]]
    if len(values) == 1:
        return values
    candidates = [value for value in values if _is_class_vector(the_plan, value.name)]
    if len(candidates) == 1:
        others = ", ".join(v.name for v in values if v is not candidates[0])
        the_plan.notes.append(
            f"converted output {candidates[0].name}, the only class vector; left out {others}"
        )
        return candidates
    shown = candidates or values
    raise Fc2ConvError(
        f"{name}: {len(shown)} outputs could be the class scores: "
        f"{', '.join(described(v) for v in shown)}; choose one with --output NAME"
    )


def _class_map(the_plan: OnnxPlan, build: Build, name: str) -> int:
    """The number of classes of output ``name``, which the converted graph holds as a class map
    under the same name (an Identity added where it needs one); refuses outputs that are not
    one class vector per image."""
    kind = the_plan.ctx.kind(name)
    shape = the_plan.ctx.shape(name) or []
    described = "x".join(map(str, shape)) or "unknown shape"
    model = the_plan.name
    if isinstance(kind, Trunk):
        if _is_class_vector(the_plan, name):  # already one cell of a convolutional head
            return shape[1]
        raise UnsupportedModelError(
            f"{model}: output {name} ({described}) is a map, not a class vector: the model is "
            "already fully convolutional (a segmentation or detection model?)"
        )
    if isinstance(kind, Flat):
        if not kind.one_cell or kind.source == name:
            raise UnsupportedModelError(
                f"{model}: output {name} ({described}) is a flattened feature map, not a class "
                "vector"
            )
        build.emit("Identity", [build.nchw(kind.source, kind.roles)], "out", output=name)
        return int(np.prod(kind.dims[1:]))
    if isinstance(kind, Vec) and _is_class_vector(the_plan, name):
        return shape[kind.axis]
    raise UnsupportedModelError(
        f"{model}: output {name} ({described}) is not a class vector (N×classes or N×classes×1×1)"
    )


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
    details: dict[str, Any],
) -> None:
    from ..export.onnx_file import fc2conv_metadata

    values = fc2conv_metadata(
        model=name,
        mode="window",
        outputs=outputs,
        geometry=geometry,
        input_channels=graph.input.channels,
        details=details,
    )
    for key, value in values.items():
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


def _save(model: Any, path: Path) -> bool:
    """Write ``model``; True where its weights went to ``path.data`` (over 2 GB)."""
    import onnx

    from ..export.onnx_file import data_path

    large = over_protobuf_limit(model, margin=64 * 1024**2)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=large,
        location=data_path(path).name if large else None,
    )
    return large
