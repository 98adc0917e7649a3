"""The rewrite of an ONNX classifier into a fully convolutional graph, node by node.

Every tensor is one of four kinds, decided in topological order from the image input:

- a **map** (``Map``): a feature map of the trunk, with the role of each axis (batch ``N``,
  rows ``H``, columns ``W``, other). Trunk nodes are kept; a ``Reshape`` whose fixed shape
  holds the canonical batch, rows or columns (a channel shuffle) gets its shape computed from
  the tensor instead, so that it runs at every size.
- a **flattened map** (``Flat``): what a ``Flatten``/``Reshape``/``Squeeze`` makes of a map,
  not built; the ``Gemm``/``MatMul`` that reads it becomes a convolution whose kernel covers
  the map: the weight row of output ``o`` read in the flatten's order (``N×C×H×W`` →
  ``W.reshape(o, C, H, W)``; ``N×H×W×C`` from a ``Transpose`` → ``W.reshape(o, H, W, C)``
  transposed to ``o×C×H×W``).
- a **vector** (``Vec``): a per-image vector, held as a map with one cell per window. Per-feature
  nodes act on it along axis 1: a ``Gemm`` is a 1×1 convolution, per-feature constants are
  reshaped to ``F×1×1``, a softmax over the classes becomes a softmax over axis 1 (before
  opset 13 ``Softmax`` flattens every axis after ``axis``, so it is applied on ``N×H×W×C``
  along the last axis).
- anything else (shape computations, constants).

A pool over the whole map at the canonical size (``GlobalAveragePool``, ``ReduceMean`` over
rows and columns, a Caffe-era ``AveragePool`` whose kernel covers the map) becomes a window
pool of the map's canonical size with stride 1: at the canonical size it gives the same one
cell, and on a larger map one cell per window.

Anything on the classifier path that has no exact per-window form is refused, naming the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from .graph import OnnxGraph

__all__ = ["ENDINGS", "Rewrite", "Step"]

Roles = tuple[str | None, ...]
NCHW: Roles = ("N", None, "H", "W")

#: nodes that act on each value alone
ELEMENTWISE = {
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "Tanh",
    "Softplus", "Softsign", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Erf", "Gelu",
    "HardSwish", "Mish", "ThresholdedRelu", "Identity", "Dropout", "Clip", "Cast", "Floor",
    "Ceil", "Round", "Sign",
}  # fmt: skip
#: nodes that combine two tensors value by value, with broadcasting
BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean"}
#: the class-axis normalisations, and what the output then holds
ENDINGS = {"Softmax": "softmax", "LogSoftmax": "log-softmax", "Sigmoid": "sigmoid"}
WINDOW_POOLS = {"GlobalAveragePool": "AveragePool", "GlobalMaxPool": "MaxPool"}
REDUCE_POOLS = {"ReduceMean": "AveragePool", "ReduceMax": "MaxPool", "ReduceSum": "AveragePool"}


@dataclass(frozen=True)
class Map:
    roles: Roles


@dataclass(frozen=True)
class Flat:
    source: str  #: the map that was flattened (a tensor of the new graph)
    roles: Roles  #: its axes' roles, in the flatten's order
    dims: tuple[int, ...]  #: its canonical shape


@dataclass(frozen=True)
class Vec:
    tensor: str  #: the map (N×F×rows×cols) that holds it in the new graph
    rank: int  #: the original's rank (2: N×F, 4: N×F×1×1)
    axis: int = 1  #: the original's feature axis (3: N×1×1×F, pooled channels-last)


@dataclass
class Step:
    """One line of the plan: which node, and what became of it."""

    node: str
    op_type: str
    change: str

    def __str__(self) -> str:
        return f"{self.node} ({self.op_type}): {self.change}"


@dataclass
class Rewrite:
    """Walks the graph once and builds the converted node list (see the module docstring)."""

    graph: OnnxGraph
    shapes: dict[str, list[int] | None]
    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    kinds: dict[str, Map | Flat | Vec] = field(default_factory=dict)
    endings: dict[str, str] = field(default_factory=dict)
    _count: int = 0

    # ---- building blocks ------------------------------------------------------------------

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"fc2conv/{hint}_{self._count}"

    def const(self, value: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def emit(self, op_type: str, inputs: list[str], hint: str, **attributes: Any) -> str:
        from onnx import helper

        output = self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def refuse(self, node: Any, reason: str) -> UnsupportedModelError:
        return UnsupportedModelError(
            f"{self.graph.name}: node {describe(node)} ({node.op_type}) {reason}"
        )

    def shape(self, name: str) -> list[int]:
        shape = self.shapes.get(name)
        if shape is None:
            raise UnsupportedModelError(
                f"{self.graph.name}: the shape of tensor {name} at the canonical size is not known "
                "(onnx shape inference cannot resolve it)"
            )
        return shape

    def constant(self, node: Any, index: int, what: str) -> np.ndarray:
        value = self.graph.constant(node.input[index]) if len(node.input) > index else None
        if value is None:
            raise self.refuse(node, f"has a {what} that is not a constant")
        return value

    def nchw(self, source: str, roles: Roles) -> str:
        """``source`` (a map whose axes have ``roles``) as N×C×H×W: the tensor a Transpose
        made it from where there is one, else a new Transpose."""
        if roles == NCHW:
            return source
        if len(roles) != 4 or sorted(map(str, roles)) != sorted(map(str, NCHW)):
            raise UnsupportedModelError(
                f"{self.graph.name}: tensor {source} has axes {roles}; the classifier head "
                "needs a batch, channel, row and column axis"
            )
        producer = self._new_producer(source)
        if producer is not None and producer.op_type == "Transpose":
            before = self.kinds.get(producer.input[0])
            if isinstance(before, Map) and before.roles == NCHW:
                return str(producer.input[0])
        perm = [roles.index(role) for role in NCHW]
        return self.emit("Transpose", [source], "to_nchw", perm=perm)

    def _new_producer(self, name: str) -> Any:
        return next((node for node in reversed(self.nodes) if name in node.output), None)

    # ---- the walk -------------------------------------------------------------------------

    def run(self, image: str) -> None:
        self.kinds[image] = Map(NCHW)
        for node in self.graph.model.graph.node:
            kinds = [self.kinds.get(name) for name in node.input if name]
            if any(isinstance(kind, (Flat, Vec)) for kind in kinds):
                self.head(node)
            elif any(isinstance(kind, Map) for kind in kinds):
                self.trunk(node)
            else:
                self.nodes.append(node)  # constants and shape computations

    # ---- the trunk ------------------------------------------------------------------------

    def trunk(self, node: Any) -> None:
        op = node.op_type
        source = next(name for name in node.input if isinstance(self.kinds.get(name), Map))
        roles = self.kinds[source].roles  # type: ignore[union-attr]
        if op in ("Shape", "Size"):
            self.nodes.append(node)
            return
        pools = (*WINDOW_POOLS, *REDUCE_POOLS, "AveragePool", "MaxPool")
        if op in pools and self.window_pool(node, source, roles):
            return
        if op in ("Flatten", "Reshape", "Squeeze") and len(self.shape(node.output[0])) == 2:
            self.flatten(node, source, roles)
            return
        if op in ("Gemm", "MatMul"):
            raise self.refuse(node, "multiplies a feature map along its columns, not per position")
        out_shape = self.shape(node.output[0])
        if op == "Transpose":
            perm = attribute(node, "perm", list(range(len(roles)))[::-1])
            self.nodes.append(node)
            self.kinds[node.output[0]] = Map(tuple(roles[axis] for axis in perm))
            return
        if op == "Reshape":
            self.reshape(node, source, roles, out_shape)
            return
        if len(out_shape) != len(roles):
            raise self.refuse(
                node, "changes the rank of the feature map; fc2conv cannot tell its axes apart"
            )
        self.nodes.append(node)
        for output in node.output[:1]:
            self.kinds[output] = Map(roles)

    def reshape(self, node: Any, source: str, roles: Roles, out_shape: list[int]) -> None:
        """A reshape that keeps batch, rows and columns (a channel shuffle): the same node with
        its shape computed from the tensor at run time where the file fixes it."""
        in_shape = self.shape(source)
        out_roles: list[str | None] = [None] * len(out_shape)
        if roles[0] == "N" and out_shape[0] == in_shape[0]:
            out_roles[0] = "N"
        if roles[-2:] == ("H", "W") and out_shape[-2:] == in_shape[-2:] and len(out_shape) > 2:
            out_roles[-2:] = ["H", "W"]
        middle_in = int(np.prod(in_shape[1:-2]))
        middle_out = int(np.prod(out_shape[1:-2]))
        if out_roles[-2:] != ["H", "W"] or out_roles[0] != "N" or middle_in != middle_out:
            raise self.refuse(
                node, "reshapes the feature map across its rows or columns; it has no "
                "per-position form"
            )  # fmt: skip
        if self.graph.constant(node.input[1]) is None:
            self.nodes.append(node)  # computed from the tensor already
        else:
            # batch, rows and columns first, copied by Reshape's 0; the channels split or
            # joined in their own order; then the file's axis order again
            from onnx import helper

            first = [roles.index(role) for role in NCHW if role is not None]
            perm = first + [axis for axis in range(len(roles)) if roles[axis] is None]
            moved = self.emit("Transpose", [source], "spatial_first", perm=perm)
            channels = [size for size, role in zip(out_shape, out_roles, strict=True) if not role]
            target = self.const(np.array([0, 0, 0, *channels], np.int64), "shape")
            split = self.fresh("reshaped")
            self.nodes.append(helper.make_node("Reshape", [moved, target], [split], name=split))
            order = {"N": 0, "H": 1, "W": 2}
            channel_axes = iter(range(3, 3 + len(channels)))
            back = [order[role] if role else next(channel_axes) for role in out_roles]
            self.nodes.append(
                helper.make_node("Transpose", [split], [node.output[0]], perm=back, name=node.name)
            )
            change = "fixed shape → batch, rows and columns copied (Reshape's 0), channels split"
            self.steps.append(Step(describe(node), "Reshape", change))
        self.kinds[node.output[0]] = Map(tuple(out_roles))

    def window_pool(self, node: Any, source: str, roles: Roles) -> bool:
        """A pool over the whole canonical map → a window pool with stride 1 (see the module
        docstring). False where the node is an ordinary pool of the trunk."""
        op = node.op_type
        in_shape = self.shape(source)
        rows, cols = in_shape[roles.index("H")], in_shape[roles.index("W")]
        scale = 1.0
        if op in REDUCE_POOLS:
            axes = _reduce_axes(self.graph, node)
            if axes is None:
                return False
            spatial = {roles.index("H"), roles.index("W")}
            if {axis % len(roles) for axis in axes} != spatial:
                return False
            keep = attribute(node, "keepdims", 1)
            pool = REDUCE_POOLS[op]
            if op == "ReduceSum":
                scale = float(rows * cols)
        elif op in WINDOW_POOLS:
            keep, pool = 1, WINDOW_POOLS[op]
        else:
            kernel = attribute(node, "kernel_shape", [])
            pads = attribute(node, "pads", [0] * 4)
            out_shape = self.shape(node.output[0])
            if attribute(node, "auto_pad", "NOTSET") != "NOTSET":
                return False
            if out_shape[2:] != [1, 1] or kernel[0] - pads[0] < rows or kernel[1] - pads[1] < cols:
                return False
            keep, pool = 1, op
            if op == "AveragePool" and attribute(node, "count_include_pad", 0):
                scale = rows * cols / (kernel[0] * kernel[1])
        mapped = self.nchw(source, roles)
        pooled = self.emit(pool, [mapped], "window_pool", kernel_shape=[rows, cols])
        if scale != 1.0:
            factor = self.const(np.array(scale, np.float32), "pool_scale")
            pooled = self.emit("Mul", [pooled, factor], "window_sum")
        features = roles.index(None) if keep else 1  # channels-last keeps them last
        self.kinds[node.output[0]] = Vec(pooled, 4 if keep else 2, features)
        change = f"{pool} {rows}x{cols}, stride 1 (one cell per window)"
        self.steps.append(Step(describe(node), op, change))
        return True

    def flatten(self, node: Any, source: str, roles: Roles) -> None:
        in_shape = self.shape(source)
        out_shape = self.shape(node.output[0])
        if out_shape[0] != in_shape[0] or roles[0] != "N":
            raise self.refuse(node, "flattens the batch axis with the features")
        self.kinds[node.output[0]] = Flat(source, roles, tuple(in_shape))
        self.steps.append(Step(describe(node), node.op_type, "removed (read by the next layer)"))

    # ---- the head -------------------------------------------------------------------------

    def head(self, node: Any) -> None:
        op = node.op_type
        kinds = [self.kinds.get(name) for name in node.input]
        first = kinds[0]
        if isinstance(first, Flat):
            self.flat_head(node, first)
            return
        if any(isinstance(kind, Flat) for kind in kinds):
            raise self.refuse(
                node, "combines the flattened feature map with another value before the first "
                "linear layer"
            )  # fmt: skip
        if op in ("Dropout", "Identity"):
            self.same_vector(node, first)  # type: ignore[arg-type]
            return
        vectors = [kind for kind in kinds if isinstance(kind, Vec)]
        if len(vectors) != len([k for k in kinds if k is not None]) and op not in BINARY:
            raise self.refuse(node, "mixes the per-image vector with a feature map")
        vec = vectors[0]
        if vec.axis != 1 and op not in ("Reshape", "Flatten", "Squeeze"):
            raise self.refuse(
                node, f"acts on the pooled vector while its features are on axis {vec.axis} "
                "(channels last); fc2conv converts a reshape to N×features there"
            )  # fmt: skip
        if op in ("Gemm", "MatMul"):
            self.linear(node, vec.tensor, None)
        elif op in ENDINGS or op in ("Hardmax",):
            self.class_axis_op(node, vec)
        elif op in ELEMENTWISE or op == "BatchNormalization":
            self.per_feature(node, vec)
        elif op in BINARY:
            self.binary(node, kinds)
        elif op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
            out_shape = self.shape(node.output[0])
            features = self.shape(node.input[0])[vec.axis]
            if out_shape[:2] != [self.shape(node.input[0])[0], features] or any(
                size != 1 for size in out_shape[2:]
            ):
                raise self.refuse(node, "reshapes the class vector into something else")
            self.same_vector(node, Vec(vec.tensor, len(out_shape)))
        elif op.startswith("Reduce"):
            self.feature_reduction(node, vec)
        elif op == "Concat":
            if len(vectors) != len(node.input):
                raise self.refuse(node, "joins the vector with a value that is not one")
            if attribute(node, "axis", 1) % vec.rank != 1:
                raise self.refuse(node, "joins vectors along another axis than the features")
            joined = self.emit("Concat", [k.tensor for k in vectors], "concat", axis=1)
            self.kinds[node.output[0]] = Vec(joined, vec.rank)
        elif op == "Conv" and self.pointwise(node):
            self.nodes.append(_renamed(node, {node.input[0]: vec.tensor}, self.fresh("conv")))
            self.kinds[node.output[0]] = Vec(self.nodes[-1].output[0], 4)
        else:
            raise self.refuse(node, "in the classifier head has no exact convolutional form")

    def same_vector(self, node: Any, vec: Vec) -> None:
        """``node`` passes the vector on unchanged (dropout, identity, a reshape to 1-sized
        axes): its output is ``vec``, ending in what its input ends in."""
        self.kinds[node.output[0]] = vec
        if node.input[0] in self.endings:
            self.endings[node.output[0]] = self.endings[node.input[0]]

    def pointwise(self, node: Any) -> bool:
        """A 1×1 convolution with stride 1 and no padding on an N×F×1×1 vector: the same on
        every cell of a map."""
        kernel = self.shape(node.input[1])[2:]
        strides = attribute(node, "strides", [1, 1])
        pads = attribute(node, "pads", [0, 0, 0, 0])
        return kernel == [1, 1] and list(strides) == [1, 1] and not any(pads)

    def flat_head(self, node: Any, flat: Flat) -> None:
        op = node.op_type
        if op in ("Dropout", "Identity"):
            self.kinds[node.output[0]] = flat
        elif op in ELEMENTWISE and op != "PRelu":  # commutes with the flatten
            renamed = _renamed(node, {node.input[0]: flat.source}, self.fresh(op.lower()))
            self.nodes.append(renamed)
            self.kinds[node.output[0]] = Flat(renamed.output[0], flat.roles, flat.dims)
        elif op in ("Gemm", "MatMul"):
            self.linear(node, self.nchw(flat.source, flat.roles), flat)
        else:
            raise self.refuse(
                node, "acts on the flattened feature map before its first linear layer; only "
                "value-by-value operations and dropout have an exact form there"
            )  # fmt: skip

    def linear(self, node: Any, mapped: str, flat: Flat | None) -> None:
        """Gemm (any transB, alpha, beta) or MatMul by a constant → a convolution."""
        if node.op_type == "Gemm":
            if attribute(node, "transA", 0):
                raise self.refuse(node, "multiplies the transposed vector (transA=1)")
            weight = self.constant(node, 1, "weight")
            matrix = weight if attribute(node, "transB", 0) else weight.T
            matrix = matrix * np.asarray(attribute(node, "alpha", 1.0), weight.dtype)
            bias = (
                self.graph.constant(node.input[2])
                if len(node.input) > 2 and node.input[2]
                else None
            )
            if len(node.input) > 2 and node.input[2] and bias is None:
                raise self.refuse(node, "adds a bias that is not a constant")
            if bias is not None:
                beta = np.asarray(attribute(node, "beta", 1.0), bias.dtype)
                bias = np.broadcast_to(bias * beta, (1, matrix.shape[0])).reshape(-1)
        else:
            weight = self.constant(node, 1, "weight")
            if weight.ndim != 2:
                raise self.refuse(node, f"multiplies by a {weight.ndim}-D constant")
            matrix, bias = weight.T, None
        outputs = matrix.shape[0]
        if flat is None:
            kernel = matrix.reshape(outputs, matrix.shape[1], 1, 1)
            change = f"Conv 1x1, {matrix.shape[1]}→{outputs}"
        else:
            dims = flat.dims[1:]
            if int(np.prod(dims)) != matrix.shape[1]:
                raise self.refuse(node, "has a weight that does not match the flattened map")
            order = [1 + flat.roles[1:].index(role) for role in NCHW[1:]]
            kernel = matrix.reshape(outputs, *dims).transpose(0, *order)
            rows, cols = kernel.shape[2:]
            change = f"Conv {rows}x{cols}, {kernel.shape[1]}→{outputs}"
            if flat.roles != NCHW:
                change += f" (weights read in the {_order(flat.roles)} order of the flatten)"
        inputs = [mapped, self.const(kernel, "weight")]
        if bias is not None:
            inputs.append(self.const(bias, "bias"))
        output = self.emit("Conv", inputs, "conv", kernel_shape=list(kernel.shape[2:]))
        self.kinds[node.output[0]] = Vec(output, 2)
        self.steps.append(Step(describe(node), node.op_type, change))

    def class_axis_op(self, node: Any, vec: Vec) -> None:
        axis = attribute(node, "axis", 1 if self.graph.opset < 13 else -1)
        if node.op_type == "Sigmoid":
            axis = 1
        if axis % vec.rank != 1:
            raise self.refuse(node, f"normalises along axis {axis}, not along the classes")
        if self.graph.opset >= 13 or node.op_type == "Sigmoid":
            output = self.emit(node.op_type, [vec.tensor], node.op_type.lower(), **(
                {} if node.op_type == "Sigmoid" else {"axis": 1}
            ))  # fmt: skip
            change = f"{node.op_type} over axis 1 (the classes of each cell)"
        else:  # before opset 13 the op flattens every axis after `axis`: classes last
            last = self.emit("Transpose", [vec.tensor], "classes_last", perm=[0, 2, 3, 1])
            normed = self.emit(node.op_type, [last], node.op_type.lower(), axis=3)
            output = self.emit("Transpose", [normed], "classes_first", perm=[0, 3, 1, 2])
            change = f"{node.op_type} over the classes of each cell (opset {self.graph.opset})"
        self.kinds[node.output[0]] = Vec(output, vec.rank)
        if node.op_type in ENDINGS:
            self.endings[node.output[0]] = ENDINGS[node.op_type]
        self.steps.append(Step(describe(node), node.op_type, change))

    def per_feature(self, node: Any, vec: Vec) -> None:
        replace = {node.input[0]: vec.tensor}
        for index in range(1, len(node.input)):
            if not node.input[index]:
                continue
            value = self.constant(node, index, "parameter")
            if node.op_type in ("PRelu",) and value.size > 1:
                slope = self.per_channel(node, value, vec.rank)
                replace[node.input[index]] = self.const(slope, "slope")
        renamed = _renamed(node, replace, self.fresh(node.op_type.lower()))
        del renamed.output[1:]  # a batch norm's or dropout's training outputs
        if node.op_type == "BatchNormalization":
            kept = [a for a in renamed.attribute if a.name not in ("spatial", "training_mode")]
            del renamed.attribute[:]
            renamed.attribute.extend(kept)
        self.nodes.append(renamed)
        self.kinds[node.output[0]] = Vec(renamed.output[0], vec.rank)
        if node.op_type in ENDINGS:
            self.endings[node.output[0]] = ENDINGS[node.op_type]

    def feature_reduction(self, node: Any, vec: Vec) -> None:
        """A reduction over the features (a norm, a sum) that keeps its axis: the same over
        axis 1 of the map."""
        axes = _reduce_axes(self.graph, node)
        if axes is None or [axis % vec.rank for axis in axes] != [1]:
            raise self.refuse(node, f"reduces over axes {axes}, not over the features alone")
        if not attribute(node, "keepdims", 1):
            raise self.refuse(node, "drops the feature axis (keepdims=0)")
        from onnx import helper

        copy = _renamed(node, {}, self.fresh(node.op_type.lower()))
        if len(copy.input) > 1:
            copy.input[1] = self.const(np.array([1], np.int64), "axes")
        else:
            kept = [a for a in copy.attribute if a.name != "axes"]
            del copy.attribute[:]
            copy.attribute.extend([*kept, helper.make_attribute("axes", [1])])
        copy.input[0] = vec.tensor
        self.nodes.append(copy)
        self.kinds[node.output[0]] = Vec(copy.output[0], vec.rank)

    def per_channel(
        self, node: Any, value: np.ndarray, rank: int, vector: str | None = None
    ) -> np.ndarray:
        """A per-feature constant (F or 1×F for an N×F vector, F×1×1 or 1×F×1×1 for N×F×1×1)
        as 1×F×1×1, to broadcast over a map's cells; ``vector``: the node's input that holds
        the features (default: its first)."""
        features = self.shape(vector or node.input[0])[1]
        padded = (1,) * (rank - value.ndim) + value.shape
        if len(padded) != rank or padded[1] != features or value.size != features:
            raise self.refuse(
                node, f"uses a constant of shape {value.shape} that is not one value per feature"
            )
        return value.reshape(1, features, 1, 1)

    def binary(self, node: Any, kinds: list[Any]) -> None:
        replace: dict[str, str] = {}
        rank = max(kind.rank for kind in kinds if isinstance(kind, Vec))
        vector = next(n for n, kind in zip(node.input, kinds, strict=True) if isinstance(kind, Vec))
        for name, kind in zip(node.input, kinds, strict=True):
            if isinstance(kind, Vec):
                replace[name] = kind.tensor
            elif isinstance(kind, (Map, Flat)):
                raise self.refuse(node, "combines the per-image vector with a feature map")
            else:
                value = self.graph.constant(name)
                if value is None:
                    raise self.refuse(node, "combines the vector with a value computed at run time")
                if value.size > 1:
                    per_cell = self.per_channel(node, value, rank, vector)
                    replace[name] = self.const(per_cell, "operand")
        renamed = _renamed(node, replace, self.fresh(node.op_type.lower()))
        self.nodes.append(renamed)
        self.kinds[node.output[0]] = Vec(renamed.output[0], rank)


def describe(node: Any) -> str:
    return node.name or node.output[0]


def attribute(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            value = helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _reduce_axes(graph: OnnxGraph, node: Any) -> list[int] | None:
    axes = attribute(node, "axes", None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = graph.constant(node.input[1])
        axes = None if value is None else [int(v) for v in value.reshape(-1)]
    return axes


def _renamed(node: Any, inputs: dict[str, str], output: str) -> Any:
    """A copy of ``node`` reading ``inputs`` in place of some of its inputs, with its first
    output renamed to ``output`` (and the others dropped)."""
    import onnx

    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    for index, name in enumerate(copy.input):
        copy.input[index] = inputs.get(name, name)
    del copy.output[:]
    copy.output.append(output)
    copy.name = output
    return copy


def _order(roles: Roles) -> str:
    return "".join({"N": "N", "H": "H", "W": "W", None: "C"}[role] for role in roles)
