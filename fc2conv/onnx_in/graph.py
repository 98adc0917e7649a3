"""An ONNX classifier as the rewrite reads it: loaded and normalised, its image input found,
every tensor's shape at the canonical size, constant values, and who produces and reads what.

No PyTorch: onnx's own loader, shape inference (with data propagation, so that shapes computed
by ``Shape``/``Gather``/``Concat`` resolve) and reference evaluator for small constant subgraphs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Fc2ConvError, UnsupportedModelError
from ..export.onnx_file import TWO_GB

__all__ = ["ImageInput", "OnnxGraph", "load", "skeleton", "static_shapes"]

#: initializers with at most this many elements are kept in the skeleton (shape constants)
SMALL = 4096
FLOAT_TYPES = (1, 10, 11, 16)  # float, float16, double, bfloat16: image tensors


def load(source: str | os.PathLike | Any) -> tuple[Any, str]:
    """The model (an ``onnx.ModelProto``, copied when one is given) and a name for messages."""
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        name = model.graph.name or "model"
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise Fc2ConvError(f"{path} does not exist; check the path")
        try:
            model = onnx.load(str(path))
        except onnx.checker.ValidationError as exc:  # its external data file is missing
            raise Fc2ConvError(
                f"{path}: cannot read its weights ({exc}); copy the weights file(s) it names "
                "into the same folder"
            ) from exc
        except (DecodeError, ValueError, OSError, RuntimeError) as exc:
            raise Fc2ConvError(
                f"{path}: not a complete ONNX model ({type(exc).__name__}: {exc}); "
                "check that the file is an ONNX classifier and was copied whole"
            ) from exc
    if not model.graph.node:
        raise Fc2ConvError(f"{name}: not a complete ONNX model (its graph has no nodes)")
    if any(prop.key == "fc2conv.geometry" for prop in model.metadata_props):
        raise Fc2ConvError(
            f"{name} is already fully convolutional (written by fc2conv); run it with "
            f"fc2conv heatmap|detect {name} IMAGE"
        )
    _normalise(model)
    if not over_protobuf_limit(model):  # a file cut at a field boundary still parses
        _validate(model, name)
    return model, name if isinstance(source, onnx.ModelProto) else Path(source).stem


def over_protobuf_limit(model: Any, margin: int = 0) -> bool:
    """Whether ``model`` with its weights inside is too large for one protobuf message (2 GB,
    less ``margin``): such a model is checked and saved with its weights in external data."""
    from google.protobuf.message import EncodeError

    try:
        return bool(model.ByteSize() > TWO_GB - margin)
    except EncodeError:  # protobuf cannot even measure a message past the limit
        return True


def _normalise(model: Any) -> None:
    """Initializers are not graph inputs (IR < 4 lists them there), and IR ≥ 4 allows that."""
    graph = model.graph
    initialized = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initialized]
    if len(graph.input) != len(inputs):
        del graph.input[:]
        graph.input.extend(inputs)
    model.ir_version = max(model.ir_version, 4)


def _validate(model: Any, name: str) -> None:
    """onnx.checker's check (every node's inputs defined, attributes valid)."""
    import onnx

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise Fc2ConvError(f"{name}: not a valid ONNX model ({first})") from exc


@dataclass
class ImageInput:
    """The image tensor: its name, whether it is N×C×H×W or N×H×W×C, channels, and the
    batch size the file fixes (None where it is free)."""

    name: str
    channels_last: bool
    channels: int
    fixed_batch: int | None
    fixed_size: tuple[int, int] | None


def _dims(value: Any) -> list[int | str | None]:
    dims: list[int | str | None] = []
    for dim in value.type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


class OnnxGraph:
    """A loaded classifier: ``model`` (as :func:`load` gives it), its image ``input``, the
    producer of every tensor, and constants."""

    def __init__(self, model: Any, name: str, input_channels: int | None = None) -> None:
        self.model = model
        self.name = name
        graph = model.graph
        inputs = list(graph.input)
        self.opset = next(
            (entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0
        )
        if not 7 <= self.opset <= 23:
            raise UnsupportedModelError(
                f"{name}: opset {self.opset}; fc2conv reads ONNX opsets 7 to 23 (convert the "
                "file with onnx.version_converter.convert_version first)"
            )
        self.input = self._image_input(inputs, input_channels)
        self.initializers = {tensor.name: tensor for tensor in graph.initializer}
        self.producer: dict[str, Any] = {}
        self.index_producers()
        self._constants: dict[str, np.ndarray | None] = {}

    def index_producers(self) -> None:
        """Record the node that produces each tensor (again, after nodes were inserted)."""
        self.producer = {output: node for node in self.model.graph.node for output in node.output}

    def _image_input(self, inputs: list[Any], channels: int | None) -> ImageInput:
        import onnx

        if len(inputs) != 1:
            names = ", ".join(value.name for value in inputs) or "none"
            raise UnsupportedModelError(
                f"{self.name}: the model has {len(inputs)} inputs ({names}); fc2conv converts "
                "classifiers with one image input"
            )
        value = inputs[0]
        dims = _dims(value)
        element = value.type.tensor_type.elem_type
        if len(dims) != 4 or element not in FLOAT_TYPES:
            shape = "x".join(str(d) if d is not None else "?" for d in dims) or "no shape"
            raise UnsupportedModelError(
                f"{self.name}: input {value.name} ({shape}) is not an image tensor "
                "(N×C×H×W or N×H×W×C, floats)"
            )
        if element != onnx.TensorProto.FLOAT:
            kind = onnx.TensorProto.DataType.Name(element).lower()
            raise UnsupportedModelError(
                f"{self.name}: input {value.name} holds {kind} values; fc2conv runs float32 "
                "models (convert it to float32 first, e.g. with onnxconverter-common)"
            )

        def small(dim: int | str | None) -> bool:
            return isinstance(dim, int) and dim <= 4

        if channels is not None:
            if dims[1] == channels or (not isinstance(dims[1], int) and dims[3] != channels):
                last = False
            elif dims[3] == channels:
                last = True
            else:
                raise UnsupportedModelError(
                    f"{self.name}: input {value.name} is {'x'.join(map(str, dims))}; neither "
                    f"its second nor its last dimension is {channels} channels"
                )
        elif small(dims[1]) and not small(dims[3]):
            last = False
        elif small(dims[3]) and not small(dims[1]):
            last = True
        else:
            raise UnsupportedModelError(
                f"{self.name}: cannot tell the channels of input {value.name} "
                f"({'x'.join(str(d) for d in dims)}); pass --input-channels N"
            )
        found = dims[3] if last else dims[1]
        if not isinstance(found, int):
            if channels is None:
                raise UnsupportedModelError(
                    f"{self.name}: input {value.name} has no fixed channel count; pass "
                    "--input-channels N"
                )
            found = channels
        height, width = (dims[1], dims[2]) if last else (dims[2], dims[3])
        fixed = (height, width) if isinstance(height, int) and isinstance(width, int) else None
        batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        return ImageInput(value.name, last, int(found), batch, fixed)

    def constant(self, name: str) -> np.ndarray | None:
        """The value of ``name`` if it is an initializer, a Constant, or computed from
        constants only by a small subgraph (e.g. a weight reshaped in the graph); else None."""
        if name in self._constants:
            return self._constants[name]
        from onnx import numpy_helper

        value: np.ndarray | None = None
        if name in self.initializers:
            value = numpy_helper.to_array(self.initializers[name])
        elif name in self.producer:
            node = self.producer[name]
            if node.op_type == "Constant":
                value = _constant_node_value(node)
            elif node.op_type not in ("Shape", "Size", "RandomNormal", "RandomUniform") and all(
                not source or self.constant(source) is not None for source in node.input
            ):
                value = self._evaluate(node, name)
        self._constants[name] = value
        return value

    def _evaluate(self, node: Any, name: str) -> np.ndarray | None:
        from onnx.reference import ReferenceEvaluator

        inputs: dict[str, np.ndarray] = {}
        for source in node.input:
            value = self.constant(source) if source else None
            if value is not None:
                inputs[source] = value
        try:
            evaluator = ReferenceEvaluator(_single_node_model(self.model, node, inputs))
            results: list[Any] = list(evaluator.run(None, inputs))
        except Exception:  # an operator the reference evaluator lacks: not a constant for us
            return None
        return np.asarray(results[list(node.output).index(name)])


def _constant_node_value(node: Any) -> np.ndarray | None:
    from onnx import helper, numpy_helper

    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if attribute.name == "value":
            return numpy_helper.to_array(value)
        if attribute.name in ("value_float", "value_int"):
            return np.array(value)
        if attribute.name in ("value_floats", "value_ints"):
            return np.array(list(value))
    return None


def _single_node_model(model: Any, node: Any, inputs: dict[str, np.ndarray]) -> Any:
    from onnx import helper

    graph = helper.make_graph(
        [node],
        "constant",
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in inputs.items()
        ],
        [helper.make_empty_tensor_value_info(output) for output in node.output if output],
    )
    return helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=8)


def skeleton(model: Any) -> Any:
    """``model`` without the data of its large initializers (they become graph inputs of the
    same type and shape): what shape inference needs, at a fraction of the memory and time."""
    import onnx
    from onnx import helper

    graph = model.graph
    light = onnx.GraphProto()
    light.name = graph.name
    light.node.extend(graph.node)
    light.input.extend(graph.input)
    light.output.extend(graph.output)
    for tensor in graph.initializer:
        count = int(np.prod(tensor.dims)) if tensor.dims else 1
        if count <= SMALL and tensor.data_location != onnx.TensorProto.EXTERNAL:
            light.initializer.append(tensor)
        else:
            light.input.append(
                helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
            )
    result = onnx.ModelProto()
    result.ir_version = model.ir_version
    result.opset_import.extend(model.opset_import)
    result.graph.CopyFrom(light)
    return result


def static_shapes(
    light: Any, input_name: str, shape: list[int], *, strict: bool = True
) -> dict[str, list[int] | None]:
    """Every tensor's shape with the image input set to ``shape`` (None: unknown).
    ``light`` is a :func:`skeleton`; it is not changed."""
    import onnx

    probe = onnx.ModelProto()
    probe.CopyFrom(light)
    del probe.graph.value_info[:]
    for value in list(probe.graph.input) + list(probe.graph.output):
        if value.name == input_name:
            value.type.tensor_type.shape.Clear()
            for size in shape:
                value.type.tensor_type.shape.dim.add().dim_value = size
        elif value in probe.graph.output:
            value.type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=strict, data_prop=True)
    shapes: dict[str, list[int] | None] = {}
    values = list(inferred.graph.value_info) + list(inferred.graph.output)
    values += list(inferred.graph.input)
    for value in values:
        if not value.type.tensor_type.HasField("shape"):
            shapes[value.name] = None
            continue
        dims = _dims(value)
        shapes[value.name] = (
            [d for d in dims if isinstance(d, int)]
            if all(isinstance(d, int) for d in dims)
            else None
        )
    for tensor in light.graph.initializer:
        shapes[tensor.name] = list(tensor.dims)
    return shapes
