"""ONNX classifiers for the ONNX-input tests and benchmark: the real third-party structures that
the onnx package ships without their weights (``onnx/backend/test/data/light``), given random
weights of order one, and small graphs of our own (a Keras-style NHWC head, PyTorch-style
shape-computing heads).

Nothing here needs PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
#: the nine light classifiers, by the file's name without light_ and .onnx
LIGHT_NAMES = (
    "bvlc_alexnet",
    "zfnet512",
    "vgg19",
    "inception_v1",
    "inception_v2",
    "resnet50",
    "densenet121",
    "squeezenet",
    "shufflenet",
)


def light_model(name: str, seed: int = 0) -> onnx.ModelProto:
    """A light model with random weights in place of its ``ConstantOfShape`` placeholders:
    He-normal convolution and Gemm weights, batch norms near the identity, and a last layer
    scaled so that the logits neither vanish nor saturate the softmax."""
    model = onnx.load(str(LIGHT / f"light_{name}.onnx"))
    graph = model.graph
    rng = np.random.default_rng(seed)
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for index, name_in in enumerate(node.input):
            consumers.setdefault(name_in, []).append((node, index))

    def role(tensor: str) -> tuple[str, int, onnx.NodeProto | None]:
        for node, index in consumers.get(tensor, []):
            if node.op_type in ("Reshape", "Unsqueeze") and index == 0:
                inner = role(node.output[0])
                if inner[0] != "other":
                    return inner
                return (
                    f"{node.op_type}-{next(iter(consumers[node.output[0]]))[0].op_type}",
                    0,
                    node,
                )
            return node.op_type, index, node
        return "other", 0, None

    weights: dict[str, np.ndarray] = {}
    for node in list(graph.node):
        if node.op_type != "ConstantOfShape":
            continue
        shape = tuple(int(v) for v in initializers[node.input[0]])
        op, index, consumer = role(node.output[0])
        if op in ("Conv", "Gemm") and index == 1:
            if op == "Gemm" and consumer is not None:
                trans_b = any(a.name == "transB" and a.i for a in consumer.attribute)
                fan_in = shape[-1] if trans_b else shape[0]
            else:
                fan_in = int(np.prod(shape[1:]))
            value = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        elif op == "BatchNormalization":
            value = [  # near the identity: a random trunk's statistics are not known
                rng.uniform(0.8, 1.2, shape),
                rng.normal(0.0, 0.1, shape),
                rng.normal(0.0, 0.1, shape),
                rng.uniform(0.8, 1.2, shape),
            ][index - 1]
        elif op == "Unsqueeze-Mul":
            value = rng.uniform(0.5, 1.5, shape)
        else:  # biases, the added half of a scale-and-shift
            value = rng.normal(0.0, 0.1, shape)
        weights[node.output[0]] = value.astype(np.float32)
    kept = [node for node in graph.node if node.op_type != "ConstantOfShape"]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name_in for node in kept for name_in in node.input}
    for entries in (graph.initializer, graph.input):
        unused = [
            entry for entry in entries if entry.name not in used and entry.name.endswith("__SHAPE")
        ]
        for entry in unused:
            entries.remove(entry)
    for name_out, value in weights.items():  # listed among the inputs too, as IR 3 wants
        graph.initializer.append(numpy_helper.from_array(value, name_out))
        graph.input.append(helper.make_tensor_value_info(name_out, TensorProto.FLOAT, value.shape))
    _calibrate(model, rng)
    return model


def _calibrate(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    """Scale the last layer so that the logits have a standard deviation of about 3 on a
    random image: a random trunk's activations grow with depth, and the softmax should
    neither saturate nor be flat."""
    import onnxruntime as ort

    graph = model.graph
    tensors = {tensor.name: tensor for tensor in graph.initializer}
    image_input = _image_input(model)
    shape = [d.dim_value for d in image_input.type.tensor_type.shape.dim]
    image = rng.standard_normal(shape).astype(np.float32)

    def run(names: list[str]) -> list[np.ndarray]:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.output[:]
        for name in names:
            probe.graph.output.append(helper.make_empty_tensor_value_info(name))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(probe.SerializeToString(), options)
        return session.run(names, {image_input.name: image})

    last = next(n for n in reversed(graph.node) if n.op_type in ("Conv", "Gemm"))
    logits = run([last.output[0]])[0]
    gain = 3.0 / float(logits.std())
    for name in last.input[1:]:
        if name in tensors:
            scaled = numpy_helper.to_array(tensors[name]) * gain
            tensors[name].CopyFrom(numpy_helper.from_array(scaled.astype(np.float32), name))
        else:  # a weight reshaped in the graph (inception_v1)
            producer = next(n for n in graph.node if name in n.output)
            source = tensors[producer.input[0]]
            scaled = numpy_helper.to_array(source) * gain
            source.CopyFrom(numpy_helper.from_array(scaled.astype(np.float32), source.name))


def _image_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    initialized = {tensor.name for tensor in model.graph.initializer}
    return next(value for value in model.graph.input if value.name not in initialized)


def nhwc_model(seed: int = 0, *, size: int = 32, classes: int = 5) -> onnx.ModelProto:
    """A Keras/tf2onnx-style classifier: NHWC input, a Transpose to NCHW, two conv/pool stages,
    a Transpose back to NHWC, Reshape to a vector, MatMul + Add, Relu, MatMul + Add, Softmax
    (opset 13)."""
    rng = np.random.default_rng(seed)

    def weight(name: str, shape: tuple[int, ...], fan_in: int) -> TensorProto:
        value = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        return numpy_helper.from_array(value.astype(np.float32), name)

    def bias(name: str, count: int) -> TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.1, count).astype(np.float32), name)

    side = size // 4 - 2  # two 'valid' 3x3 convs at strides 1 with 2x2 pools
    side = ((size - 2) // 2 - 2) // 2
    features = side * side * 16
    nodes = [
        helper.make_node("Transpose", ["input_1"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "c1_w", "c1_b"], ["c1"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2_w", "c2_b"], ["c2"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Transpose", ["p2"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "d1_w"], ["d1"]),
        helper.make_node("Add", ["d1", "d1_b"], ["d1b"]),
        helper.make_node("Relu", ["d1b"], ["h1"]),
        helper.make_node("MatMul", ["h1", "d2_w"], ["d2"]),
        helper.make_node("Add", ["d2", "d2_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    initializers = [
        weight("c1_w", (8, 3, 3, 3), 27),
        bias("c1_b", 8),
        weight("c2_w", (16, 8, 3, 3), 72),
        bias("c2_b", 16),
        numpy_helper.from_array(np.array([-1, features], np.int64), "flat_shape"),
        weight("d1_w", (features, 32), features),
        bias("d1_b", 32),
        weight("d2_w", (32, classes), 32),
        bias("d2_b", classes),
    ]
    graph = helper.make_graph(
        nodes,
        "keras_style",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


#: heads of :func:`small_classifier`, each in the style of an exporter, with its opset
HEADS = {
    "pytorch_view": 11,  # x.view(x.size(0), -1) → Linear → BatchNorm1d → PReLU → Dropout → Linear → LogSoftmax
    "flatten_matmul": 9,  # Flatten → MatMul + Add → Relu → Gemm(transB=0, alpha, beta) → Sigmoid
    "channels_last_mean": 13,  # Transpose to NHWC → ReduceMean over H, W → Gemm → Softmax(-1)
    "reduce_mean_18": 18,  # ReduceMean with its axes as an input (opset 18) → Gemm
    "global_max": 7,  # GlobalMaxPool → Flatten → Gemm → Softmax
    "normalised": 11,  # GlobalAveragePool → Squeeze → x / ||x|| → scale → Gemm
    "softmax_identity": 13,  # GlobalAveragePool → Conv 1x1 → Softmax → Identity (ends in softmax)
    # bad inputs
    "segmentation": 13,  # the output is a map
    "argmax": 13,  # ends in ArgMax: no convolutional form
    "shifted_flat": 13,  # a constant per feature plus the flattened map before the first Gemm
    "wide_conv": 13,  # GlobalAveragePool → Conv 3x3 with padding: mixes cells on a map
    "mlp": 13,  # the input is a vector, not an image
}


def small_classifier(
    head: str, *, seed: int = 0, size: int = 32, classes: int = 7
) -> onnx.ModelProto:
    """A small classifier with fixed input 1×3×size×size (2 conv/pool stages, no padding) and
    one of the :data:`HEADS`."""
    rng = np.random.default_rng(seed)
    initializers: list[TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(name: str, shape: tuple[int, ...], fan_in: int) -> str:
        return const(name, (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32))

    def small(name: str, shape: tuple[int, ...]) -> str:
        return const(name, rng.normal(0, 0.1, shape).astype(np.float32))

    side = ((size - 2) // 2 - 2) // 2
    channels = 8
    node = helper.make_node
    nodes = [
        node("Conv", ["input", weight("c1_w", (6, 3, 3, 3), 27), small("c1_b", (6,))], ["c1"]),
        node("Relu", ["c1"], ["r1"]),
        node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        node(
            "Conv",
            ["p1", weight("c2_w", (channels, 6, 3, 3), 54), small("c2_b", (channels,))],
            ["c2"],
        ),
        node("Relu", ["c2"], ["r2"]),
        node("MaxPool", ["r2"], ["features"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    flat = channels * side * side
    hidden = 16
    opset = HEADS[head]
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])
    output_shape: list[int | str] = [1, classes]
    if head == "pytorch_view":
        nodes += [
            node("Shape", ["features"], ["shape"]),
            node("Gather", ["shape", const("zero", np.array(0, np.int64))], ["batch"], axis=0),
            node("Unsqueeze", ["batch"], ["batch1"], axes=[0]),
            node(
                "Concat",
                ["batch1", const("minus_one", np.array([-1], np.int64))],
                ["target"],
                axis=0,
            ),
            node("Reshape", ["features", "target"], ["flat"]),
            node(
                "Gemm",
                ["flat", weight("fc1_w", (hidden, flat), flat), small("fc1_b", (hidden,))],
                ["fc1"],
                transB=1,
            ),
            node(
                "BatchNormalization",
                [
                    "fc1",
                    const("bn_s", rng.uniform(0.5, 1.5, hidden).astype(np.float32)),
                    small("bn_b", (hidden,)),
                    small("bn_m", (hidden,)),
                    const("bn_v", rng.uniform(0.5, 1.5, hidden).astype(np.float32)),
                ],
                ["bn"],
            ),
            node(
                "PRelu",
                ["bn", const("slope", rng.uniform(0.05, 0.3, hidden).astype(np.float32))],
                ["act"],
            ),
            node("Dropout", ["act"], ["drop"]),
            node(
                "Gemm",
                ["drop", weight("fc2_w", (classes, hidden), hidden), small("fc2_b", (classes,))],
                ["fc2"],
                transB=1,
            ),
            node("LogSoftmax", ["fc2"], ["output"], axis=1),
        ]
    elif head == "flatten_matmul":
        nodes += [
            node("Flatten", ["features"], ["flat"], axis=1),
            node("MatMul", ["flat", weight("fc1_w", (flat, hidden), flat)], ["mm"]),
            node("Add", ["mm", small("fc1_b", (1, hidden))], ["fc1"]),
            node("Relu", ["fc1"], ["act"]),
            node(
                "Gemm",
                ["act", weight("fc2_w", (hidden, classes), hidden), small("fc2_b", (classes,))],
                ["fc2"],
                alpha=0.5,
                beta=2.0,
            ),
            node("Sigmoid", ["fc2"], ["output"]),
        ]
    elif head in ("channels_last_mean", "reduce_mean_18"):
        if head == "channels_last_mean":
            nodes += [
                node("Transpose", ["features"], ["nhwc"], perm=[0, 2, 3, 1]),
                node("ReduceMean", ["nhwc"], ["pooled"], axes=[1, 2], keepdims=0),
            ]
        else:
            nodes += [
                node(
                    "ReduceMean",
                    ["features", const("axes", np.array([2, 3], np.int64))],
                    ["pooled"],
                    keepdims=0,
                )
            ]
        nodes += [
            node(
                "Gemm",
                [
                    "pooled",
                    weight("fc_w", (classes, channels), channels),
                    small("fc_b", (classes,)),
                ],
                ["fc"],
                transB=1,
            ),
            node("Softmax", ["fc"], ["output"], axis=-1),
        ]
    elif head == "global_max":
        nodes += [
            node("GlobalMaxPool", ["features"], ["pooled"]),
            node("Flatten", ["pooled"], ["flat"]),
            node(
                "Gemm",
                ["flat", weight("fc_w", (classes, channels), channels), small("fc_b", (classes,))],
                ["fc"],
                transB=1,
            ),
            node("Softmax", ["fc"], ["output"]),
        ]
    elif head == "normalised":
        nodes += [
            node("GlobalAveragePool", ["features"], ["pooled"]),
            node("Squeeze", ["pooled"], ["vector"], axes=[2, 3]),
            node("ReduceL2", ["vector"], ["norm"], axes=[1], keepdims=1),
            node("Div", ["vector", "norm"], ["unit"]),
            node("Mul", ["unit", const("scale", np.array(8.0, np.float32))], ["scaled"]),
            node(
                "Gemm",
                [
                    "scaled",
                    weight("fc_w", (classes, channels), channels),
                    small("fc_b", (classes,)),
                ],
                ["output"],
                transB=1,
            ),
        ]
    elif head == "segmentation":
        nodes += [
            node(
                "Conv",
                ["features", weight("cls_w", (classes, channels, 1, 1), channels)],
                ["output"],
            )
        ]
        output_shape = [1, classes, side, side]
    elif head == "argmax":
        nodes += [
            node("Flatten", ["features"], ["flat"]),
            node("Gemm", ["flat", weight("fc_w", (classes, flat), flat)], ["fc"], transB=1),
            node("ArgMax", ["fc"], ["output"], axis=1, keepdims=0),
        ]
        output_shape = [1]
    elif head in ("softmax_identity", "wide_conv"):
        side_kernel = 1 if head == "softmax_identity" else 3
        nodes += [
            node("GlobalAveragePool", ["features"], ["pooled"]),
            node(
                "Conv",
                [
                    "pooled",
                    weight("cls_w", (classes, channels, side_kernel, side_kernel), channels),
                ],
                ["logits"],
                pads=[side_kernel // 2] * 4,
            ),
            node("Softmax", ["logits"], ["probabilities"], axis=1),
            node("Identity", ["probabilities"], ["output"]),
        ]
        output_shape = [1, classes, 1, 1]
    elif head == "shifted_flat":
        nodes += [
            node("Flatten", ["features"], ["flat"]),
            node(
                "Add",
                [const("shift", rng.standard_normal(flat).astype(np.float32)), "flat"],
                ["shifted"],
            ),
            node("Gemm", ["shifted", weight("fc_w", (classes, flat), flat)], ["output"], transB=1),
        ]
    elif head == "mlp":
        image = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 784])
        nodes = [node("Gemm", ["input", weight("fc_w", (classes, 784), 784)], ["output"], transB=1)]
    kind = TensorProto.INT64 if head == "argmax" else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        head,
        [image],
        [helper.make_tensor_value_info("output", kind, output_shape)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7 if opset < 15 else 8
    return model
