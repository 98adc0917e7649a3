"""Exact cells at ``ceil_mode`` borders in a converted ONNX classifier: every cell is the
classifier on its window.

The ONNX form of :mod:`fc2conv.conversion.borders` (whose docstring derives it), on the converted
graph: after a ``MaxPool`` or ``AveragePool`` whose last window is partial at the canonical size,
every map runs in four variants stacked along the batch (interior; the crop's last row; last
column; both). Each ``Conv``, ``MaxPool`` and ``AveragePool`` that reads the stack, or pools the
partial window, becomes per variant a sum (a maximum, a weighted mean) of the layer over kernel
blocks, each block on its input variant cut by ``Slice`` to the block's rows and columns, so that
every variant has one size: the map ends at the last cell whose window lies in the image.
Element-wise nodes run on the stack as they are (a plain map they also read is repeated four
times along the batch); at the class map, one cell at the canonical size, the variants fold into
one map. The kernel blocks are new initializers, the whole kernel stays the layer's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..partial_windows import (
    VARIANTS,
    Block,
    Borders,
    Flags,
    Pair,
    Window,
    depends,
    is_partial,
    last_window,
    lowest,
    reads,
    reads_last_row_twice,
)
from .rules.base import attribute, describe

__all__ = ["exact_borders"]

WINDOW_OPS = {"Conv": "conv", "MaxPool": "max", "AveragePool": "avg"}
#: operators that act on each value (or each position, across channels) and batch entry alone
ELEMENTWISE = {
    "Abs", "Add", "BatchNormalization", "Cast", "Ceil", "Celu", "Clip", "Div", "Dropout", "Elu",
    "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Log",
    "Max", "Mean", "Min", "Mish", "Mul", "Neg", "Pow", "PRelu", "Reciprocal", "Relu", "Round",
    "Selu", "Shrink", "Sigmoid", "Sign", "Softplus", "Softsign", "Sqrt", "Sub", "Sum", "Tanh",
    "ThresholdedRelu", "Where", "LRN",
}  # fmt: skip
#: operators along one axis, which must be the channels'
CHANNEL_OPS = {"Concat", "Softmax", "LogSoftmax", "Hardmax"}


@dataclass(frozen=True)
class _Layer:
    """A window layer of the graph: the node, its window, its input and output."""

    node: Any
    window: Window
    source: str
    output: str
    #: ceil_mode, or pads at the bottom and right only: its last window can be cut by the map's
    #: border, in a larger image by a crop's
    cut: bool = False


@dataclass
class _Carried:
    """The decision: the window layers that run as variants (whether they read a stack, and the
    axes their output's variants differ on), and the nodes that run on the stack with the plain
    maps beside it that they read."""

    windows: dict[int, tuple[_Layer, bool, Flags]] = field(default_factory=dict)
    pointwise: dict[int, list[str]] = field(default_factory=dict)
    #: the other layers that are ``cut``: whole windows at the canonical size, so that what
    #: cuts their last window (ceil_mode, padding) only makes positions beyond the image
    trimmed: dict[int, _Layer] = field(default_factory=dict)


def exact_borders(model: Any, image: str, shapes: dict[str, list[int] | None]) -> Borders:
    """Rewrite ``model`` (a converted ``onnx.ModelProto`` whose image input is ``image``) in
    place so that its cells at ``ceil_mode`` borders are exact (see the module docstring);
    ``shapes``: every tensor's shape at the canonical size. The result names the pools whose
    last window is partial at that size, and why they were left alone where they were."""
    nodes = list(model.graph.node)
    layers: dict[int, _Layer] = {}
    reasons = []
    for index, node in enumerate(nodes):
        found = _layer(node, shapes)
        if isinstance(found, str):
            reasons.append(found)
        elif found is not None:
            layers[index] = found
    partial = [describe(layer.node) for layer in layers.values() if is_partial(layer.window)]
    cut = {index for index, layer in layers.items() if layer.cut}
    if not partial and (not cut or reasons):
        return Borders()
    pools = tuple(dict.fromkeys(partial))
    carried = reasons[0] if reasons else _carry(model, nodes, layers, image, shapes)
    if isinstance(carried, str):
        return Borders(pools, carried)
    carried.trimmed = {i: layers[i] for i in sorted(cut) if i not in carried.windows}
    constants = _Constants(model)
    missing = next(
        (
            f"{describe(layer.node)}: its weights are computed in the graph"
            for layer, _, _ in carried.windows.values()
            if layer.window.kind == "conv" and constants.get(layer.node.input[1]) is None
        ),
        "",
    )
    if missing:
        return Borders(pools, missing)
    _rewrite(model, nodes, carried, shapes, constants)
    trimmed = tuple(describe(layers[index].node) for index in sorted(cut))
    return Borders(pools, trimmed=trimmed)


def _layer(node: Any, shapes: dict[str, list[int] | None]) -> _Layer | str | None:
    """The window layer ``node`` is (a 2-D Conv, MaxPool or AveragePool), None for any other
    node, or why a window layer the pass cannot take is in the way."""
    kind = WINDOW_OPS.get(node.op_type)
    if kind is None:
        return None
    source, output = node.input[0], node.output[0]
    before, after = shapes.get(source), shapes.get(output)
    where = describe(node)
    if before is None or after is None:
        return f"{where}: its shape at the canonical size is unknown"
    if len(before) != 4 or len(after) != 4:
        return None  # not a 2-D window layer: element-wise for the pass, so refused on the stack
    if kind == "conv":
        weight = shapes.get(node.input[1])
        kernel = tuple(attribute(node, "kernel_shape", weight[2:] if weight else []))
    else:
        kernel = tuple(attribute(node, "kernel_shape", []))
    if len(kernel) != 2:
        return f"{where}: kernel unknown"
    stride = tuple(attribute(node, "strides", [1, 1]))
    pads = list(attribute(node, "pads", [0, 0, 0, 0]))
    same = attribute(node, "auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER")
    if (same or any(pads[:2])) and kernel != (1, 1):
        return f"{where}: pads its input"
    if tuple(attribute(node, "dilations", [1, 1])) != (1, 1):
        return f"{where}: a dilated window"
    if len([name for name in node.output if name]) > 1:
        return f"{where}: returns the indices of its maxima"
    last = last_window((before[2], before[3]), (after[2], after[3]), (stride[0], stride[1]))
    pairs = (kernel[0], kernel[1]), (stride[0], stride[1])
    window = Window(kind, *pairs, last, int(attribute(node, "group", 1)))
    end_pads = any(pads[2:]) and not (same or any(pads[:2]))
    if end_pads:  # padding at the bottom and right only, as older opsets write ceil_mode
        if kind == "avg" and attribute(node, "count_include_pad", 0):
            return f"{where}: an average pool that counts its padding"
        if any(m < 1 or (m < k and m + s < k) for m, k, s in zip(last, *pairs, strict=True)):
            return f"{where}: pads its input by more than one partial window"
    return _Layer(node, window, source, output, end_pads or bool(attribute(node, "ceil_mode", 0)))


def _carry(
    model: Any,
    nodes: list[Any],
    layers: dict[int, _Layer],
    image: str,
    shapes: dict[str, list[int] | None],
) -> _Carried | str:
    """Follow the variants from the first partial pool to the class map: the axes on which each
    stacked tensor's variants differ, and so which layers run as variants and which nodes run on
    the stack. Or why they cannot be carried: a node that is not element-wise, a softmax or
    concatenation that is not along the channels, two windows that both read a crop's last row,
    or a class map of more than one cell at the canonical size."""
    carried = _Carried()
    stacked: dict[str, Flags] = {}  # tensors that hold the four variants → axes they differ on
    from_image = {image}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    for index, node in enumerate(nodes):
        if any(name in from_image for name in node.input):
            from_image.update(node.output)
        inputs = [name for name in node.input if name in stacked]
        layer = layers.get(index)
        if layer is not None:
            before = stacked.get(layer.source, (False, False))
            size = (shapes[layer.output][2], shapes[layer.output][3])  # type: ignore[index]
            if reads_last_row_twice(layer.window, before, size):
                return f"{describe(node)}: two of its windows read the crop's last row"
            differ = depends(layer.window, before, size)
            if any(before) or is_partial(layer.window):
                carried.windows[index] = (layer, any(before), differ)
            if any(differ):
                stacked[layer.output] = differ
            continue
        if not inputs:
            continue
        reason = _pointwise(node, opset)
        if reason:
            return reason
        for name in node.input:  # a constant broadcasts over the stack where its batch is 1
            shape = shapes.get(name) if name and name not in from_image else None
            if shape is not None and len(shape) == 4 and shape[0] != 1:
                return f"{describe(node)} ({node.op_type}): a constant with a batch axis"
        flags = (any(stacked[n][0] for n in inputs), any(stacked[n][1] for n in inputs))
        for output in node.output:
            stacked[output] = flags
        carried.pointwise[index] = [
            name
            for name in dict.fromkeys(node.input)
            if name and name not in stacked and name in from_image
        ]
    if any(value.name in stacked for value in model.graph.output):
        return "the class map has more than one cell at the canonical size"
    return carried


def _pointwise(node: Any, opset: int) -> str:
    """Why ``node`` cannot run on the stack of variants ("" when it can)."""
    where = f"{describe(node)} ({node.op_type})"
    if node.op_type in ELEMENTWISE:
        return ""
    if node.op_type in CHANNEL_OPS:
        axis = attribute(
            node, "axis", 1 if node.op_type == "Concat" else (-1 if opset >= 13 else 1)
        )
        if node.op_type != "Concat" and opset < 13:
            return f"{where}: before opset 13 it normalises over every axis after its own"
        return "" if axis in (1, -3) else f"{where}: not along the channels"
    return f"{where}: an operation between a ceil_mode pool and the class map"


class _Constants:
    """The graph's constant tensors (initializers and Constant nodes), as arrays."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        from .graph import _constant_node_value

        self.values: dict[str, np.ndarray] = {
            tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer
        }
        for node in model.graph.node:
            if node.op_type == "Constant":
                value = _constant_node_value(node)
                if value is not None:
                    self.values[node.output[0]] = value

    def get(self, name: str) -> np.ndarray | None:
        return self.values.get(name)


class _Emitter:
    """The new nodes and initializers of the rewrite, with the slices of inputs and kernels
    made once each."""

    def __init__(self, opset: int, constants: _Constants) -> None:
        self.opset = opset
        self.constants = constants
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0
        self._made: dict[Any, str] = {}

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"fc2conv/border_{hint}_{self._count}"

    def const(self, value: np.ndarray, hint: str) -> str:
        """A new initializer holding ``value`` (one per value: small ones repeat)."""
        from onnx import numpy_helper

        value = np.ascontiguousarray(value)
        key = ("const", value.dtype.str, value.shape, value.tobytes())
        if key not in self._made:
            name = self.fresh(hint)
            self.initializers.append(numpy_helper.from_array(value, name))
            self._made[key] = name
        return self._made[key]

    def emit(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        return self.emit_to(op_type, inputs, self.fresh(hint), **attrs)

    def emit_to(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def split(self, stack: str) -> list[str]:
        """The four variants of a stack (equal parts of its batch)."""
        from onnx import helper

        if ("split", stack) not in self._made:
            outputs = [self.fresh("variant") for _ in VARIANTS]
            extra: dict[str, Any] = {"num_outputs": 4} if self.opset >= 18 else {}
            node = helper.make_node("Split", [stack], outputs, name=outputs[0], axis=0, **extra)
            self.nodes.append(node)
            self._made["split", stack] = ",".join(outputs)
        return self._made["split", stack].split(",")

    def cut(self, data: str, start: Pair, end: Pair) -> str:
        """``data`` from row and column ``start``, with ``-end`` rows and columns cut at the
        bottom and right where ``end`` is negative (positive ends are the layer's padding)."""
        stop = [end[0] if end[0] < 0 else 2**62, end[1] if end[1] < 0 else 2**62]
        if tuple(start) == (0, 0) and stop == [2**62, 2**62]:
            return data
        key = ("cut", data, tuple(start), tuple(stop))
        if key not in self._made:
            starts, axes = [start[0], start[1]], [2, 3]
            if self.opset < 10:
                self._made[key] = self.emit(
                    "Slice", [data], "cut", starts=starts, ends=stop, axes=axes
                )
            else:
                names = [self.const(np.array(v, np.int64), "slice") for v in (starts, stop, axes)]
                self._made[key] = self.emit("Slice", [data, *names], "cut")
        return self._made[key]

    def kernel(self, weight: str, rows: Pair, cols: Pair) -> str:
        """The block ``rows`` × ``cols`` of convolution kernel ``weight`` (the kernel itself
        where the block is all of it)."""
        value = self.constants.get(weight)
        assert value is not None
        if (rows, cols) == ((0, value.shape[2]), (0, value.shape[3])):
            return weight
        key = ("kernel", weight, rows, cols)
        if key not in self._made:
            block = value[:, :, rows[0] : rows[1], cols[0] : cols[1]]
            self._made[key] = self.const(block, "kernel")
        return self._made[key]


def _rewrite(
    model: Any,
    nodes: list[Any],
    carried: _Carried,
    shapes: dict[str, list[int] | None],
    constants: _Constants,
) -> None:
    """Carry the variants through the graph as :func:`_carry` decided."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    out = _Emitter(opset, constants)
    repeated: dict[str, str] = {}
    for index, node in enumerate(nodes):
        decided = carried.windows.get(index)
        if decided is not None:
            layer, stack, differ = decided
            size = shapes[layer.output]
            assert size is not None
            _variants(out, layer, stack, (size[2] == 1, size[3] == 1), not any(differ))
            continue
        if index in carried.trimmed:
            _set_attribute(node, "pads", [0, 0, 0, 0])
            if any(a.name == "ceil_mode" for a in node.attribute):
                _set_attribute(node, "ceil_mode", 0)
        for name in carried.pointwise.get(index, ()):  # plain maps beside the stack
            if name not in repeated:
                repeated[name] = out.emit("Concat", [name] * 4, "repeated", axis=0)
            node.input[:] = [repeated[n] if n == name else n for n in node.input]
        out.nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(out.nodes)
    model.graph.initializer.extend(out.initializers)
    used = {name for node in out.nodes for name in node.input}
    kernels = {
        layer.node.input[1]
        for layer, _, _ in carried.windows.values()
        if layer.window.kind == "conv"
    }
    unused = kernels - used  # kernels that only their blocks read now
    kept = [tensor for tensor in model.graph.initializer if tensor.name not in unused]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


def _set_attribute(node: Any, name: str, value: Any) -> None:
    from onnx import helper

    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute(name, value)])


def _variants(out: _Emitter, layer: _Layer, stack: bool, folded: Flags, plain: bool) -> None:
    """The nodes of one window layer's variants (:func:`fc2conv.partial_windows.reads`): the
    stack of four, or (``plain``) the one map, under the layer's output name."""
    window, node = layer.window, layer.node
    inputs = out.split(layer.source) if stack else [layer.source] * 4
    wanted, read = reads(window.kernel, window.last, folded, plain)
    computed = {on: _blocks(out, node, window, inputs, blocks) for on, blocks in read.items()}
    results = [computed[on] for on in wanted.values()]
    if plain:
        out.emit_to("Identity", results, layer.output)
    else:
        out.emit_to("Concat", results, layer.output, axis=0)


def _blocks(
    out: _Emitter, node: Any, window: Window, inputs: list[str], blocks: list[Block]
) -> str:
    """One variant of a window layer: the sum of convolutions over the kernel blocks it reads
    (the bias once), or the maximum or area-weighted mean of pools over them, each on its input
    variant cut to the block."""
    least = lowest(window)
    parts: list[str] = []
    areas: list[int] = []
    for (top, bottom, row_flag), (left, right, col_flag) in blocks:
        end = (bottom - least[0], right - least[1])
        data = out.cut(inputs[2 * col_flag + row_flag], (top, left), end)
        size = [bottom - top, right - left]
        settings: dict[str, Any] = {"kernel_shape": size, "strides": list(window.stride)}
        if max(end) > 0:
            settings["pads"] = [0, 0, max(end[0], 0), max(end[1], 0)]
        if window.kind == "conv":
            weight = out.kernel(node.input[1], (top, bottom), (left, right))
            bias = [node.input[2]] if len(node.input) > 2 and node.input[2] and not parts else []
            parts.append(
                out.emit("Conv", [data, weight, *bias], "conv", group=window.groups, **settings)
            )
        else:
            op = "MaxPool" if window.kind == "max" else "AveragePool"
            parts.append(out.emit(op, [data], "pool", **settings))
        areas.append(size[0] * size[1])
    if len(parts) == 1:
        return parts[0]
    if window.kind == "max":
        return out.emit("Max", parts, "max")
    if window.kind == "avg":
        total = sum(areas)
        parts = [
            out.emit("Mul", [part, out.const(np.array(area / total, np.float32), "share")], "share")
            for part, area in zip(parts, areas, strict=True)
        ]
    return out.emit("Sum", parts, "sum")
