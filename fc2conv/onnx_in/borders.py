"""Exact cells at ``ceil_mode`` borders in a converted ONNX classifier: every cell is the
classifier on its window.

The ONNX form of :mod:`fc2conv.conversion.borders` (whose docstring derives it), on the converted
graph: after a ``MaxPool`` or ``AveragePool`` whose last window is partial at the canonical size
(``ceil_mode``, or padding at the bottom and right only, as exporters write ceil_mode before
opset 10), every map has four variants: interior; as the crop's last row; last column; both.
Each ``Conv``, ``MaxPool`` and ``AveragePool`` that reads them, or pools the partial window,
becomes per variant a sum (a maximum, a weighted mean) of the layer over kernel blocks, each on
its input variant cut by ``Slice`` to the block's rows and columns, so that every variant has
one size: the map ends at the last cell whose window lies in the image. Element-wise nodes run
once per variant; at the class map, one cell at the canonical size, the variants fold into one
map. The kernel blocks are new initializers. Pools and paddings that cut a last window which is
whole at the canonical size only add positions beyond the image in a larger one: they are
dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..partial_windows import (
    VARIANTS,
    Borders,
    Flags,
    Pair,
    Piece,
    Window,
    common_piece,
    depends,
    is_partial,
    last_window,
    piece_input,
    pieces,
    reads_last_row_twice,
)
from .rules.base import attribute, describe

__all__ = ["exact_borders", "may_cut"]

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
    """The decision: the window layers that run as variants (whether they read four variants,
    and the axes their output's variants differ on), and the nodes that run once per variant."""

    windows: dict[int, tuple[_Layer, bool, Flags]] = field(default_factory=dict)
    pointwise: set[int] = field(default_factory=set)
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
    carried = reasons[0] if reasons else _carry(model, nodes, layers, shapes)
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


def may_cut(model: Any) -> bool:
    """Whether a window layer of ``model`` can cut its last window (a pool with ceil_mode, or
    padding at the bottom and right only): whether :func:`exact_borders` has anything to do."""
    return any(
        node.op_type in WINDOW_OPS
        and (attribute(node, "ceil_mode", 0) or any(attribute(node, "pads", [0] * 4)[2:]))
        for node in model.graph.node
    )


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
    if (same and kernel != (1, 1)) or any(pads[:2]):
        return f"{where}: pads its input"
    if tuple(attribute(node, "dilations", [1, 1])) != (1, 1):
        return f"{where}: a dilated window"
    if len([name for name in node.output if name]) > 1:
        return f"{where}: returns the indices of its maxima"
    last = last_window((before[2], before[3]), (after[2], after[3]), (stride[0], stride[1]))
    pairs = (kernel[0], kernel[1]), (stride[0], stride[1])
    window = Window(kind, *pairs, last, int(attribute(node, "group", 1)))
    end_pads = any(pads[2:])
    if end_pads:  # padding at the bottom and right only, as older opsets write ceil_mode
        if kind == "avg" and attribute(node, "count_include_pad", 0):
            return f"{where}: an average pool that counts its padding"
        if any(m < 1 or (m < k and m + s < k) for m, k, s in zip(last, *pairs, strict=True)):
            return f"{where}: pads its input by more than one partial window"
    return _Layer(node, window, source, output, end_pads or bool(attribute(node, "ceil_mode", 0)))


def _carry(
    model: Any, nodes: list[Any], layers: dict[int, _Layer], shapes: dict[str, list[int] | None]
) -> _Carried | str:
    """Follow the variants from the first partial pool to the class map: the axes on which each
    tensor's variants differ, and so which layers run as variants and which nodes run once per
    variant. Or why they cannot be carried: a node that is not element-wise, a softmax or
    concatenation that is not along the channels, two windows that both read a crop's last row,
    or a class map of more than one cell at the canonical size."""
    carried = _Carried()
    varied: dict[str, Flags] = {}  # tensors that hold four variants → the axes they differ on
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    for index, node in enumerate(nodes):
        inputs = [name for name in node.input if name in varied]
        layer = layers.get(index)
        if layer is not None:
            before = varied.get(layer.source, (False, False))
            size = (shapes[layer.output][2], shapes[layer.output][3])  # type: ignore[index]
            if reads_last_row_twice(layer.window, before, size):
                return f"{describe(node)}: two of its windows read the crop's last row"
            differ = depends(layer.window, before, size)
            if any(before) or is_partial(layer.window):
                carried.windows[index] = (layer, any(before), differ)
            if any(differ):
                varied[layer.output] = differ
            continue
        if not inputs:
            continue
        reason = _pointwise(node, opset)
        if reason:
            return reason
        flags = (any(varied[n][0] for n in inputs), any(varied[n][1] for n in inputs))
        for output in node.output:
            varied[output] = flags
        carried.pointwise.add(index)
    if any(value.name in varied for value in model.graph.output):
        return "the class map has more than one cell at the canonical size"
    return carried


def _pointwise(node: Any, opset: int) -> str:
    """Why ``node`` cannot run once per variant ("" when it can): it must act on each
    position alone."""
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
    """The graph's constant tensors (initializers and Constant nodes), read as arrays when
    asked for (a large model's other weights stay where they are)."""

    def __init__(self, model: Any) -> None:
        self.tensors = {tensor.name: tensor for tensor in model.graph.initializer}
        self.nodes = {
            node.output[0]: node for node in model.graph.node if node.op_type == "Constant"
        }
        self.read: dict[str, np.ndarray | None] = {}

    def get(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        from .graph import _constant_node_value

        if name not in self.read:
            if name in self.tensors:
                self.read[name] = numpy_helper.to_array(self.tensors[name])
            else:
                self.read[name] = (
                    _constant_node_value(self.nodes[name]) if name in self.nodes else None
                )
        return self.read[name]


class _Emitter:
    """The new nodes and initializers of the rewrite, with the slices of inputs and kernels
    made once each."""

    def __init__(self, opset: int, constants: _Constants) -> None:
        self.opset = opset
        self.constants = constants
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0
        self.made: dict[Any, Any] = {}  #: what was made once, by what it is

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"fc2conv/border_{hint}_{self._count}"

    def const(self, value: np.ndarray, hint: str) -> str:
        """A new initializer holding ``value`` (one per value: small ones repeat)."""
        from onnx import numpy_helper

        value = np.ascontiguousarray(value)
        key = ("const", value.dtype.str, value.shape, value.tobytes())
        if key not in self.made:
            name = self.fresh(hint)
            self.initializers.append(numpy_helper.from_array(value, name))
            self.made[key] = name
        return self.made[key]

    def emit(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        return self.emit_to(op_type, inputs, self.fresh(hint), **attrs)

    def emit_to(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def cut(self, data: str, start: Pair, end: Pair) -> str:
        """``data`` from row and column ``start``, with ``-end`` rows and columns cut at the
        bottom and right where ``end`` is negative (positive ends are the layer's padding)."""
        stop = [end[0] if end[0] < 0 else 2**62, end[1] if end[1] < 0 else 2**62]
        if tuple(start) == (0, 0) and stop == [2**62, 2**62]:
            return data
        key = ("cut", data, tuple(start), tuple(stop))
        if key not in self.made:
            starts, axes = [start[0], start[1]], [2, 3]
            if self.opset < 10:
                self.made[key] = self.emit(
                    "Slice", [data], "cut", starts=starts, ends=stop, axes=axes
                )
            else:
                names = [self.const(np.array(v, np.int64), "slice") for v in (starts, stop, axes)]
                self.made[key] = self.emit("Slice", [data, *names], "cut")
        return self.made[key]

    def column(self, bias: str) -> str:
        """Bias ``bias`` as a C×1×1 constant, to add to a map."""
        value = self.constants.get(bias)
        assert value is not None
        return self.const(value.reshape(-1, 1, 1), "bias")

    def kernel(self, weight: str, rows: Pair, cols: Pair) -> str:
        """The block ``rows`` × ``cols`` of convolution kernel ``weight`` (the kernel itself
        where the block is all of it)."""
        value = self.constants.get(weight)
        assert value is not None
        if (rows, cols) == ((0, value.shape[2]), (0, value.shape[3])):
            return weight
        key = ("kernel", weight, rows, cols)
        if key not in self.made:
            block = value[:, :, rows[0] : rows[1], cols[0] : cols[1]]
            self.made[key] = self.const(block, "kernel")
        return self.made[key]


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
    variants: dict[str, list[str]] = {}  # tensors that hold four variants → their four names
    for index, node in enumerate(nodes):
        decided = carried.windows.get(index)
        if decided is not None:
            layer, stack, differ = decided
            size = shapes[layer.output]
            assert size is not None
            inputs = variants[layer.source] if stack else [layer.source]
            folded = (size[2] == 1, size[3] == 1)
            results = _variants(out, layer, inputs, folded, not any(differ), stack)
            if len(results) == 1:
                out.emit_to("Identity", results, layer.output)
            else:
                variants[layer.output] = results
            continue
        if index in carried.trimmed:
            _set_attribute(node, "pads", [0, 0, 0, 0])
            if any(a.name == "ceil_mode" for a in node.attribute):
                _set_attribute(node, "ceil_mode", 0)
        if index in carried.pointwise:  # once per variant, with the plain inputs as they are
            for variant in range(len(VARIANTS)):
                out.nodes.append(_copy(node, variant, variants, out))
            continue
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


def _copy(node: Any, variant: int, variants: dict[str, list[str]], out: _Emitter) -> Any:
    """A copy of ``node`` on ``variant`` of its inputs that hold four; its outputs are
    variants of its own (recorded in ``variants``)."""
    import onnx

    new = onnx.NodeProto()
    new.CopyFrom(node)
    new.input[:] = [variants[name][variant] if name in variants else name for name in node.input]
    for position, name in enumerate(node.output):
        if name:
            rows, cols = VARIANTS[variant]
            made = f"{name}/border_{rows}{cols}"  # as the crop's last row, column: 1
            variants.setdefault(name, []).append(made)
            new.output[position] = made
    new.name = f"{node.name or node.output[0]}/border_{VARIANTS[variant][0]}{VARIANTS[variant][1]}"
    return new


def _variants(
    out: _Emitter, layer: _Layer, inputs: list[str], folded: Flags, plain: bool, stacked: bool
) -> list[str]:
    """The nodes of one window layer's variants (:func:`fc2conv.partial_windows.pieces`) on
    ``inputs`` (``stacked``: the four variants of its input; else its one input): the names of
    the four variants, or (``plain``) of the one map. Each kernel piece is computed once."""
    window, node = layer.window, layer.node
    order, found = pieces(window, folded, plain, stacked)
    bias = node.input[2] if window.kind == "conv" and len(node.input) > 2 else ""
    biased = common_piece(found) if bias else None  # every variant reads it once: the bias
    computed = {}
    for on, group in found.items():
        parts = [
            _piece(out, layer, inputs[piece[0]], piece, bias if piece == biased else "")
            for piece in group
        ]
        computed[on] = _combine(out, window, parts, group)
        if bias and biased is None:
            computed[on] = out.emit("Add", [computed[on], out.column(bias)], "bias")
    return [computed[on] for on in order]


def _piece(out: _Emitter, layer: _Layer, source: str, piece: Piece, bias: str) -> str:
    """The layer over one kernel piece on its input ``source``, cut so that every piece has
    the positions of the layer's last window (made once for each layer, input and piece)."""
    window, node = layer.window, layer.node
    key = ("piece", layer.output, source, piece, bias)
    if key in out.made:
        return out.made[key]
    start, end = piece_input(window, piece)
    _, rows, cols = piece
    data = out.cut(source, start, end)
    settings: dict[str, Any] = {
        "kernel_shape": [rows[1] - rows[0], cols[1] - cols[0]],
        "strides": list(window.stride),
    }
    if max(end) > 0:
        settings["pads"] = [0, 0, max(end[0], 0), max(end[1], 0)]
    if window.kind == "conv":
        weight = out.kernel(node.input[1], rows, cols)
        inputs = [data, weight, *([bias] if bias else [])]
        made = out.emit("Conv", inputs, "conv", group=window.groups, **settings)
    else:
        op = "MaxPool" if window.kind == "max" else "AveragePool"
        made = out.emit(op, [data], "pool", **settings)
    out.made[key] = made
    return made


def _combine(out: _Emitter, window: Window, parts: list[str], group: list[Piece]) -> str:
    """One variant from its pieces: their sum (a convolution), maximum, or area-weighted
    mean."""
    if len(parts) == 1:
        return parts[0]
    if window.kind == "max":
        return out.emit("Max", parts, "max")
    if window.kind == "avg":
        areas = [(rows[1] - rows[0]) * (cols[1] - cols[0]) for _, rows, cols in group]
        parts = [
            out.emit(
                "Mul", [part, out.const(np.array(area / sum(areas), np.float32), "share")], "share"
            )
            for part, area in zip(parts, areas, strict=True)
        ]
    summed = parts[0]
    for part in parts[1:]:
        summed = out.emit("Add", [part, summed], "sum")
    return summed
