"""Graph surgery around the rules: the classifier's image input made an N×C×H×W input of a known
name before the walk, and the converted graph put together after it (the nodes the outputs need,
the weights they read, dynamic batch, height and width)."""

from __future__ import annotations

from typing import Any

from .graph import ImageInput

__all__ = ["assemble", "live_nodes", "with_nchw_input"]


def with_nchw_input(model: Any, image: ImageInput, name: str) -> None:
    """Rename the image input to ``name``; a channels-last input becomes an N×C×H×W one that a
    new first ``Transpose`` turns into the tensor the file's nodes read."""
    from onnx import helper

    value = next(value for value in model.graph.input if value.name == image.name)
    if image.channels_last:
        transpose = helper.make_node("Transpose", [name], [image.name], perm=[0, 2, 3, 1])
        model.graph.node.insert(0, transpose)
        model.graph.input.remove(value)
        dims: list[int | str] = ["N", image.channels, "H", "W"]
        model.graph.input.append(
            helper.make_tensor_value_info(name, value.type.tensor_type.elem_type, dims)
        )
        return
    value.name = name
    for node in model.graph.node:
        node.input[:] = [name if source == image.name else source for source in node.input]


def live_nodes(nodes: list[Any], outputs: list[str]) -> list[Any]:
    """The nodes the outputs depend on, in their order."""
    needed = set(outputs)
    live = []
    for node in reversed(nodes):
        if any(output in needed for output in node.output):
            live.append(node)
            needed.update(name for name in node.input if name)
    return live[::-1]


def assemble(
    model: Any,
    nodes: list[Any],
    initializers: list[Any],
    image: str,
    channels: int,
    outputs: list[tuple[Any, int]],
) -> Any:
    """The converted model: ``model``'s header and metadata, the live ``nodes``, the
    initializers they read (``model``'s and the new ones), an input ``image`` of batch×channels×
    height×width and each output (its original value info, its class count) as
    batch×classes×rows×cols."""
    import onnx
    from onnx import helper

    converted = onnx.ModelProto()
    converted.ir_version = model.ir_version
    converted.opset_import.extend(model.opset_import)
    converted.producer_name = "fc2conv"
    converted.metadata_props.extend(
        prop for prop in model.metadata_props if not prop.key.startswith("fc2conv.")
    )
    graph = converted.graph
    graph.name = model.graph.name
    live = live_nodes(nodes, [value.name for value, _ in outputs])
    graph.node.extend(live)
    used = {name for node in live for name in node.input}
    graph.initializer.extend(t for t in model.graph.initializer if t.name in used)
    graph.initializer.extend(t for t in initializers if t.name in used)
    graph.input.append(
        helper.make_tensor_value_info(
            image, onnx.TensorProto.FLOAT, ["batch", channels, "height", "width"]
        )
    )
    for value, classes in outputs:
        graph.output.append(
            helper.make_tensor_value_info(
                value.name,
                value.type.tensor_type.elem_type or onnx.TensorProto.FLOAT,
                ["batch", classes, "rows", "cols"],
            )
        )
    return converted
