"""Few-node ONNX classifiers for the per-rule tests (after onnx2torch's node-converter tests): a
padding-free trunk (one 3×3 convolution, so every cell's window is the input size) followed by the
nodes under test, and the checks those tests share. No PyTorch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import windows
from onnx import TensorProto, helper, numpy_helper

import fc2conv

SIZE = 12  #: the canonical input
CHANNELS = 4  #: the trunk map's channels (N×4×10×10 at the canonical size)
RTOL = 1e-5
node = helper.make_node


class Weights:
    """Seeded constants of order one, collected as initializers."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.tensors: list[TensorProto] = []

    def add(self, name: str, value: np.ndarray) -> str:
        taken = {tensor.name for tensor in self.tensors}
        name = next(f"{name}_{i}" if i else name for i in range(len(taken) + 1)
                    if (f"{name}_{i}" if i else name) not in taken)  # fmt: skip
        self.tensors.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def normal(self, name: str, shape: Sequence[int], scale: float = 1.0) -> str:
        return self.add(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def ints(self, name: str, values: Sequence[int]) -> str:
        return self.add(name, np.array(values, np.int64))


def classifier(
    head: list[onnx.NodeProto],
    weights: Weights,
    output_shape: Sequence[int | str],
    *,
    opset: int = 13,
    outputs: Sequence[tuple[str, Sequence[int]]] = (),
    trunk: list[onnx.NodeProto] | None = None,
) -> onnx.ModelProto:
    """Input ``x`` (1×3×SIZE×SIZE) → Conv 3×3 (no padding) → Relu → ``m`` (1×4×10×10), then
    ``head``, whose last output ``y`` has ``output_shape``; ``trunk`` replaces the Relu's
    successors before the head; ``outputs``: further graph outputs."""
    conv_w = weights.normal("conv_w", (CHANNELS, 3, 3, 3), (2 / 27) ** 0.5)
    conv_b = weights.normal("conv_b", (CHANNELS,), 0.1)
    nodes = [node("Conv", ["x", conv_w, conv_b], ["c"]), node("Relu", ["c"], ["m"])]
    nodes += trunk or []
    graph = helper.make_graph(
        nodes + head,
        "rule_test",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(output_shape))]
        + [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in outputs],
        weights.tensors,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def run(model: onnx.ModelProto, images: np.ndarray, names: list[str] | None = None) -> list:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(names, {session.get_inputs()[0].name: images})


def assert_cells_are_windows(model: onnx.ModelProto, rows: int = 3, cols: int = 4) -> None:
    """Convert ``model``; on an image of ``rows`` × ``cols`` windows (the trunk reads no
    padding, so each cell's window is a crop) every cell equals the original on its crop."""
    result = fc2conv.convert_onnx(model)
    assert result.geometry.stride == (1, 1) and result.geometry.window == (SIZE, SIZE)
    image = np.random.default_rng(5).standard_normal((1, 3, SIZE + rows - 1, SIZE + cols - 1))
    image = image.astype(np.float32)
    maps = run(result.model, image)[0]  # 1 × K × rows × cols
    assert maps.shape[2:] == (rows, cols)
    windows.assert_cells_are_windows(
        lambda crop: run(model, crop)[0], image, maps, (SIZE, SIZE), (1, 1), rtol=RTOL
    )


def refusal(model: onnx.ModelProto) -> str:
    """The message of the UnsupportedModelError that converting ``model`` raises."""
    with pytest.raises(fc2conv.UnsupportedModelError) as caught:
        fc2conv.convert_onnx(model, verify=False)
    return str(caught.value)


def plan_of(model: onnx.ModelProto) -> str:
    return str(fc2conv.convert_onnx(model, verify=False).plan)
