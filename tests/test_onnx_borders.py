"""ceil_mode pools in ONNX classifier files made exact at every cell's border
(fc2conv.onnx_in.borders): each cell of a larger image equals the original file on its window,
and no cell names a window outside the image; where the pass cannot, the conversion says why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from classifiers import FaceStage, StageR
from exporters import export
from helpers import reinit
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn
from windows import assert_cells_are_windows

import fc2conv
from fc2conv.runtime import open_session

EVERY_CELL = "every cell is the classifier on its window"


def original_on(path: Path, output: int):
    """The original file in onnxruntime, as a function of a batch of crops: output ``output``."""
    session = open_session(str(path))
    name = session.get_inputs()[0].name
    return lambda crops: session.run(None, {name: crops.astype(np.float32)})[output]


def converted_maps(path: Path, image: np.ndarray) -> np.ndarray:
    session = open_session(str(path))
    return session.run(None, {"images": image})[0]


def check_every_cell(
    source: Path, converted: Path, output: int, sizes, window, stride, unread=(0, 0)
) -> None:
    """Every cell of the converted file's map at each of ``sizes`` is the original on its
    window, and the map ends at the last cell whose window ends inside the image, but for the
    ``unread`` last rows and columns of the window, which the classifier never reads (there the
    original sees zeros)."""
    original = original_on(source, output)
    rng = np.random.default_rng(0)
    for height, width in sizes:
        image = rng.standard_normal((2, 3, height, width)).astype(np.float32)
        maps = converted_maps(converted, image)
        rows = (height + unread[0] - window[0]) // stride[0] + 1
        cols = (width + unread[1] - window[1]) // stride[1] + 1
        assert maps.shape[2:] == (rows, cols)
        padded = np.pad(image, ((0, 0), (0, 0), (0, unread[0]), (0, unread[1])))
        assert_cells_are_windows(original, padded, maps, window, stride)


@pytest.mark.parametrize(
    ("model", "exporter", "opset", "output"),
    [
        ("faces", "torchscript", 9, 1),  # Slice with attributes, Split without num_outputs
        ("faces", "torchscript", None, 1),
        ("faces", "dynamo", None, 1),  # opset 18: Split with num_outputs
        ("max", "torchscript", None, 1),
        ("avg", "torchscript", 13, 1),  # average pools: area-weighted means of blocks
        ("avg", "dynamo", None, 0),  # the box offsets: raw scores
    ],
)
def test_every_cell_of_an_onnx_file_is_its_window(model, exporter, opset, output, tmp_path):
    torch.manual_seed(0)
    module = {
        "faces": lambda: reinit(FaceStage()),
        "max": lambda: reinit(StageR(nn.MaxPool2d)),
        "avg": lambda: reinit(StageR(nn.AvgPool2d)),
    }[model]().eval()
    source = tmp_path / "stage.onnx"
    export(module, (24, 24), source, exporter, opset)
    target = tmp_path / "stage_fcn.onnx"
    result = fc2conv.convert_onnx(source, target, output=output)
    geometry = result.geometry
    assert geometry.min_size == (24, 24) == geometry.window  # was 22x22 before the rewrite
    assert any(EVERY_CELL in note for note in result.notes), result.notes
    assert not any("pool with ceil_mode" in note for note in result.notes)
    onnx.checker.check_model(onnx.load(str(target)), full_check=True)
    sizes = [(24, 24), (47, 30), (61, 53)]
    check_every_cell(source, target, output, sizes, (24, 24), geometry.stride)


def test_kernels_read_only_in_blocks_leave_the_file(tmp_path):
    """The class map's first convolution is one cell at 24x24: it reads the crop's last row
    and column everywhere, in blocks, and its whole kernel is no longer in the file."""
    source = tmp_path / "faces.onnx"
    export(reinit(FaceStage()).eval(), (24, 24), source, "torchscript")
    model = fc2conv.convert_onnx(source, output=1, verify=False).model
    read = {name for node in model.graph.node for name in node.input}
    assert all(tensor.name in read for tensor in model.graph.initializer)


class Stage(nn.Module):
    """conv → ceil_mode pool → ``after`` → flatten → Linear: a partial window at 20x20."""

    def __init__(self, after: nn.Module, features: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(3, 2, ceil_mode=True), after)
        self.fc = nn.Linear(features, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


@pytest.mark.parametrize(
    ("after", "features", "reason"),
    [
        (nn.Conv2d(4, 5, 3, padding=1), 5 * 9 * 9, "pads its input"),
        (nn.Conv2d(4, 5, 3, dilation=2), 5 * 5 * 5, "a dilated window"),
        (
            nn.InstanceNorm2d(4),
            4 * 9 * 9,
            "an operation between a ceil_mode pool and the class map",
        ),
    ],
)
def test_a_pool_left_inexact_is_named_with_the_reason(after, features, reason, tmp_path):
    source = tmp_path / "stage.onnx"
    export(reinit(Stage(after, features)).eval(), (20, 20), source, "torchscript")
    result = fc2conv.convert_onnx(source)  # converts, and its checks pass
    inexact = [note for note in result.notes if "stay inexact" in note]
    assert len(inexact) == 1 and reason in inexact[0], result.notes
    beyond = [note for note in result.notes if "pool with ceil_mode" in note]
    assert len(beyond) == 1 and "MaxPool" in beyond[0]


def test_ceil_mode_pools_of_whole_windows_need_nothing(tmp_path):
    # at 24x24: 22 rows pool into 11 whole windows of 2
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
                          nn.Linear(4 * 11 * 11, 3)).eval()  # fmt: skip
    source = tmp_path / "whole.onnx"
    export(reinit(model), (24, 24), source, "torchscript")
    result = fc2conv.convert_onnx(source)
    assert not [note for note in result.notes if "ceil_mode" in note], result.notes
    assert not any(node.op_type == "Split" for node in result.model.graph.node)


@st.composite
def stages(draw):
    """A padding-free trunk of one to three blocks (conv, then a ceil_mode max or average pool
    or none) and a flatten into one or two Linears, at a canonical size of 14 to 30."""
    blocks = []
    for _ in range(draw(st.integers(1, 3))):
        conv = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
        pool = draw(st.sampled_from([None, "max", "avg"]))
        shape = (draw(st.integers(2, 3)), draw(st.integers(1, 2))) if pool else None
        blocks.append((conv, pool, shape))
    size = (draw(st.integers(14, 30)), draw(st.integers(14, 30)))
    return blocks, size, draw(st.booleans())


def build(blocks, size, hidden: bool) -> nn.Module | None:
    layers: list[nn.Module] = []
    channels = 3
    for (kernel, stride), pool, shape in blocks:
        layers += [nn.Conv2d(channels, 4, kernel, stride), nn.ReLU()]
        channels = 4
        if pool:
            kind = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
            layers.append(kind(shape[0], shape[1], ceil_mode=True))
    trunk = nn.Sequential(*layers)
    try:
        with torch.no_grad():
            features = trunk(torch.zeros(1, 3, *size)).flatten(1).shape[1]
    except RuntimeError:
        return None
    head = (
        [nn.Linear(features, 6), nn.ReLU(), nn.Linear(6, 3)] if hidden else [nn.Linear(features, 3)]
    )
    return nn.Sequential(trunk, nn.Flatten(), *head).eval()


#: trunks with a pool whose last window is partial at their canonical size, run every time: a max
#: then an average pool (22 rows -> 11 windows, the last of 2 rows), an average pool whose last
#: window holds 1 row, a partial max pool then a pool of whole windows, and one partial along one
#: axis
PARTIAL = [
    ([((3, 1), "max", (3, 2)), ((3, 1), "avg", (3, 2))], (24, 24), True),
    ([((1, 1), "avg", (2, 2)), ((2, 1), None, None)], (15, 17), False),
    ([((3, 2), "max", (3, 2)), ((1, 1), "max", (2, 2))], (25, 26), True),
    # partial along the columns only: the row variants of the pool are one map, read twice
    ([((1, 1), "max", (2, 2)), ((1, 1), None, None)], (14, 15), False),
]


def test_random_trunks_with_ceil_mode_pools_are_exact_in_every_cell(tmp_path_factory):
    """Every padding-free trunk drawn converts, and each cell of an image larger by a few
    strides equals the original file on its window, partial last windows or not."""
    converted, partial = [], []

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(stages())
    @example(PARTIAL[0])
    @example(PARTIAL[1])
    @example(PARTIAL[2])
    @example(PARTIAL[3])
    def check(spec) -> None:
        blocks, size, hidden = spec
        model = build(blocks, size, hidden)
        if model is None:  # the trunk does not run at that size
            return
        folder = tmp_path_factory.mktemp("stage")
        source, target = folder / "stage.onnx", folder / "stage_fcn.onnx"
        export(reinit(model, seed=len(str(spec))), size, source, "torchscript")
        try:
            result = fc2conv.convert_onnx(source, target)
        except fc2conv.UnsupportedModelError as refused:  # a trunk pooled to 1x1 before a conv
            assert "in the classifier head has no exact convolutional form" in str(refused)
            return
        converted.append(spec)
        assert not any("stay inexact" in note or "ceil_mode:" in note for note in result.notes)
        if any(EVERY_CELL in note for note in result.notes):
            partial.append(spec)
        geometry = result.geometry
        assert geometry.window == size
        # smaller only by rows and columns the classifier never reads (a stride that leaves them)
        stride, unread = geometry.stride, np.subtract(size, geometry.min_size)
        assert (unread >= 0).all() and (unread < stride).all(), geometry
        larger = (size[0] + 2 * stride[0] + 1, size[1] + stride[1])
        check_every_cell(source, target, 0, [larger], size, stride, tuple(unread))

    check()
    assert len(converted) >= 12, f"only {len(converted)} trunks converted"
    assert all(spec in partial for spec in PARTIAL)
