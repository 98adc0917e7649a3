"""ONNX classifiers in: the real third-party structures of onnx's light test models, heads in
the styles of PyTorch, Keras and old Caffe converters, and the bad inputs a user brings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_graphs import HEADS, LIGHT_NAMES, light_model, nhwc_model, small_classifier
from windows import assert_cells_are_windows

import fc2conv
from fc2conv import compare
from fc2conv.export.onnx_file import read_metadata
from fc2conv.onnx_in import convert_onnx
from fc2conv.runtime import open_session

#: the light structures over 200 MB (AlexNet, ZFNet-512, VGG-19): behind a marker
LARGE = {"bvlc_alexnet", "zfnet512", "vgg19"}


def run(model: onnx.ModelProto | Path, images: np.ndarray) -> list[np.ndarray]:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    session = open_session(source)
    return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(images)})


def first_output(model: onnx.ModelProto | Path, channels_last: bool = False):
    """Runs ``model`` on N×C×H×W crops (given to it as N×H×W×C with ``channels_last``) and
    returns its first output: the original classifier, for assert_cells_are_windows."""
    return lambda crop: run(model, crop.transpose(0, 2, 3, 1) if channels_last else crop)[0]


def assert_every_cell_is_its_window(original, result, image, channels_last=False, **kwargs):
    """The converted model of ``result`` on ``image`` (1×C×H×W): each cell equals
    ``original`` on that cell's window (the trunk reads no padding)."""
    maps = run(result.model, image)[0]
    assert maps.shape[2:] == result.geometry.output_size(*image.shape[2:])
    geometry = result.geometry
    original = first_output(original, channels_last)
    assert_cells_are_windows(original, image, maps, geometry.window, geometry.stride, **kwargs)
    return maps[0]


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.onnx_light) if n in LARGE else n for n in LIGHT_NAMES],
)
def test_light_structures_convert_exactly(name, tmp_path):
    """Each real structure converts; the proof inside (onnxruntime against the original at
    224x224, maps at two more sizes, softmax sums) passed; the written file has the metadata
    heatmap and detect read, with dynamic batch, height and width."""
    model = light_model(name)
    out = tmp_path / f"{name}_fcn.onnx"
    result = convert_onnx(model, out)
    canonical = result.checks[0]
    assert (canonical.height, canonical.width) == (224, 224)
    assert len(result.checks) == 3 and all(check.map_size for check in result.checks)
    # the written file against the original, run here: at 224x224 the one cell is the output
    image = np.random.default_rng(7).standard_normal((1, 3, 224, 224)).astype(np.float32)
    (want,), (got,) = run(model, image), run(out, image)
    assert got.shape == (1, want.shape[1], 1, 1)
    assert float(np.abs(want).max()) > 1e-2, "outputs of order one, or nothing is compared"
    assert compare.relative_error(want, got.reshape(want.shape)) <= 1e-4
    assert result.geometry.canonical_size == (224, 224)
    meta = read_metadata(out)
    assert meta["outputs"][0]["channels"] == 1000
    assert meta["outputs"][0]["ending"] == ("scores" if name == "densenet121" else "softmax")
    dims = [
        d.dim_param or d.dim_value for d in onnx.load(out).graph.input[0].type.tensor_type.shape.dim
    ]
    assert dims == ["batch", 3, "height", "width"]


def test_keras_nhwc_every_cell_equals_the_classifier_on_its_window():
    """The NHWC head's weights are read in the flatten's order: with a padding-free trunk,
    every cell of a larger image equals the original on that cell's window."""
    model = nhwc_model()
    result = convert_onnx(model)
    image = np.random.default_rng(1).standard_normal((1, 3, 32 + 3 * 4, 32 + 2 * 4))
    maps = assert_every_cell_is_its_window(model, result, image.astype(np.float32), True)
    assert maps.shape[1:] == (4, 3)
    assert np.abs(maps.sum(axis=0) - 1).max() < 1e-5  # softmax per cell


@pytest.mark.parametrize(
    "head",
    [h for h in HEADS if h not in ("segmentation", "argmax", "mlp", "shifted_flat", "wide_conv")],
)
def test_heads_of_every_style_every_cell(head):
    """PyTorch-style view + Linear + BatchNorm1d + PReLU + LogSoftmax, Flatten + MatMul + Add,
    Gemm with transB=0, alpha and beta, a channels-last ReduceMean, ReduceMean with axes as an
    input (opset 18), GlobalMaxPool at opset 7, an L2-normalised vector: every cell of a
    larger image equals the original on its window (the trunk has no padding)."""
    model = small_classifier(head)
    result = convert_onnx(model)
    image = np.random.default_rng(2).standard_normal((1, 3, 32 + 2 * 4, 32 + 3 * 4))
    maps = assert_every_cell_is_its_window(model, result, image.astype(np.float32))
    assert maps.shape[1:] == (3, 4)
    if head == "softmax_identity":  # the ending is seen through the Identity: no second softmax
        assert result.outputs[0]["ending"] == "softmax"


def test_softmax_before_opset_13_normalises_each_cell():
    """SqueezeNet (opset 9) ends in Softmax(axis=1) over N×1000×1×1, which at opset 9 flattens
    every axis after 1: on a map it would normalise over classes, rows and columns together.
    The converted model normalises each cell over its classes."""
    result = convert_onnx(light_model("squeezenet"))
    image = np.random.default_rng(3).standard_normal((2, 3, 261, 325)).astype(np.float32)
    maps = run(result.model, image)[0]
    assert maps.shape[2:] == (3, 7)
    np.testing.assert_allclose(maps.sum(axis=1), 1.0, atol=1e-5)


def test_external_data_and_initializers_as_inputs(tmp_path):
    """A file with its weights in an external data file, and an old-IR graph that lists its
    initializers among the inputs, both convert from the path."""
    model = small_classifier("pytorch_view")
    for tensor in model.graph.initializer:
        model.graph.input.append(
            onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
        )
    source = tmp_path / "external.onnx"
    onnx.save_model(
        model, source, save_as_external_data=True, location="external.data", size_threshold=0
    )
    assert (tmp_path / "external.data").stat().st_size > 0
    result = convert_onnx(source, tmp_path / "converted.onnx", classes=[f"c{i}" for i in range(7)])
    image = np.random.default_rng(6).standard_normal((1, 3, 32 + 4, 32 + 8)).astype(np.float32)
    assert_every_cell_is_its_window(source, result, image)  # the original read from its files
    assert read_metadata(tmp_path / "converted.onnx")["classes"][0] == "c0"
    (tmp_path / "external.data").unlink()  # copied without its weights
    with pytest.raises(fc2conv.Fc2ConvError, match="copy the weights file"):
        convert_onnx(source)


def test_heatmap_of_a_converted_file_is_its_softmax_map(tmp_path):
    out = tmp_path / "keras_fcn.onnx"
    convert_onnx(nhwc_model(), out, classes=list("abcde"))
    image = np.random.default_rng(4).random((60, 80, 3)).astype(np.float32)
    result = fc2conv.heatmap(out, image, scales=(1.0,))
    assert result.classes == list("abcde")
    # the model's own softmax map (mean 0, std 1: none given), not a second softmax over it
    maps = run(out, np.ascontiguousarray(image.transpose(2, 0, 1)[None]))[0][0]
    assert result.levels[0].scores.shape == maps.shape == (5, 8, 13)
    assert compare.relative_error(maps, result.levels[0].scores) <= 1e-6
    assert result.peak("c").score == pytest.approx(float(maps[2].max()), rel=1e-6)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        ("segmentation", "output output (1x7x6x6) is a map, not a class vector"),
        ("argmax", "node output (ArgMax) in the classifier head has no exact convolutional form"),
        ("mlp", "input input (1x784) is not an image tensor"),
        (
            "shifted_flat",
            "node shifted (Add) combines the flattened feature map with a constant of more than "
            "one value",
        ),
        ("wide_conv", "node logits (Conv) in the classifier head has no exact convolutional form"),
    ],
)
def test_refusals_name_the_problem(head, message):
    with pytest.raises(
        fc2conv.UnsupportedModelError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        convert_onnx(small_classifier(head))


def fc2conv_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command line in a fresh Python, which must not import PyTorch on this path."""
    code = (
        "import sys; from fc2conv.cli import main\n"
        "try:\n    main(sys.argv[1:])\n"
        "finally:\n    assert 'torch' not in sys.modules, 'torch imported'"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True
    )


def test_command_line_export_inspect_and_bad_files(tmp_path):
    onnx.save(small_classifier("flatten_matmul"), tmp_path / "classifier.onnx")
    onnx.save(small_classifier("segmentation"), tmp_path / "segmenter.onnx")
    done = fc2conv_cli("classifier.onnx", "--out", "fcn.onnx", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "relative error" in done.stdout and (tmp_path / "fcn.onnx").is_file()

    shown = fc2conv_cli("inspect", "classifier.onnx", cwd=tmp_path)
    assert (
        shown.returncode == 0 and "Conv 6x6, 8→16" in shown.stdout and "stride 4x4" in shown.stdout
    )

    converted = fc2conv_cli("inspect", "fcn.onnx", cwd=tmp_path)
    assert converted.returncode == 0 and "converted by fc2conv" in converted.stdout
    assert "7 classes, ends in sigmoid" in converted.stdout

    data = (tmp_path / "classifier.onnx").read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.onnx").write_text("not a model")
    cases = {
        ("truncated.onnx",): "truncated.onnx: not a",
        ("notes.onnx",): "notes.onnx: not a complete ONNX model",
        ("segmenter.onnx",): "is a map, not a class vector",
        ("classifier.onnx", "--stride", "2"): "--stride: not for an ONNX classifier",
        ("fcn.onnx",): "already fully convolutional",
        ("missing.onnx",): "missing.onnx does not exist",
    }
    for args, message in cases.items():
        failed = fc2conv_cli(*args, "--out", "bad.onnx", cwd=tmp_path)
        assert failed.returncode == 1, (args, failed.stderr)
        assert message in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
        lines = failed.stderr.strip().splitlines()  # progress lines, then one error line
        assert lines[-1].startswith("error:") and sum("error" in x for x in lines) == 1
        assert not (tmp_path / "bad.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_bgr_and_mean_reach_the_run_path(tmp_path):
    """A Caffe-style model (BGR, mean and std of its own, given in its channel order): the run
    path feeds it the image in that order, normalised with its values."""
    plain, caffe = tmp_path / "plain.onnx", tmp_path / "caffe.onnx"
    convert_onnx(nhwc_model(), plain)
    convert_onnx(nhwc_model(), caffe, bgr=True, mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.5])
    from fc2conv.run.runner import Runner

    image = np.random.default_rng(5).random((48, 56, 3)).astype(np.float32)
    by_hand = ((image[..., ::-1] - [0.1, 0.2, 0.3]) / 0.5).transpose(2, 0, 1)[None]  # B,G,R
    want = run(plain, np.ascontiguousarray(by_hand, dtype=np.float32))[0][0]
    got = Runner.from_onnx(caffe).logits(image)
    assert got.shape == want.shape == (5, 5, 7)
    assert compare.relative_error(want, got) <= 1e-6
    with pytest.raises(fc2conv.Fc2ConvError, match="2 mean values for an input of 3 channels"):
        convert_onnx(nhwc_model(), mean=[0.1, 0.2])


def test_input_size_where_the_file_leaves_it_free():
    model = small_classifier("global_max")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param, dims[2].dim_param, dims[3].dim_param = "N", "H", "W"
    with pytest.raises(fc2conv.InputSizeError, match="pass the size the classifier was trained"):
        convert_onnx(model)
    result = convert_onnx(model, input_size=(32, 32))
    assert result.geometry.canonical_size == (32, 32)
    image = np.random.default_rng(8).standard_normal((1, 3, 32 + 8, 32 + 4)).astype(np.float32)
    assert_every_cell_is_its_window(model, result, image)


def test_input_size_cannot_change_a_fixed_input():
    model = small_classifier("global_max")
    height, width = (d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[2:])
    with pytest.raises(fc2conv.InputSizeError, match=f"fixed at {height}x{width}"):
        convert_onnx(model, input_size=(height + 8, width + 8))
    result = convert_onnx(model, input_size=(height, width), verify=False)
    assert result.geometry.canonical_size == (height, width)


def test_a_bias_added_before_the_vector_converts():
    """``Add(bias, x)``, the order PyTorch exports a Linear on more than two dimensions in."""
    from onnx import TensorProto, numpy_helper
    from onnx import helper as make

    rng = np.random.default_rng(0)
    weights = {
        "k": rng.standard_normal((4, 3, 3, 3)),
        "w": rng.standard_normal((4, 5)),
        "b": rng.standard_normal(5),
    }
    graph = make.make_graph(
        [
            make.make_node("Conv", ["x", "k"], ["c"], kernel_shape=[3, 3]),
            make.make_node("GlobalAveragePool", ["c"], ["g"]),
            make.make_node("Flatten", ["g"], ["f"]),
            make.make_node("MatMul", ["f", "w"], ["m"]),
            make.make_node("Add", ["b", "m"], ["y"]),
        ],
        "bias_first",
        [make.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [make.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    model = make.make_model(graph, opset_imports=[make.make_opsetid("", 13)])
    image = np.random.default_rng(9).standard_normal((1, 3, 16 + 3, 16 + 2)).astype(np.float32)
    assert_every_cell_is_its_window(model, convert_onnx(model), image)


def test_a_grey_classifier_runs_on_the_luma_of_colour_images(tmp_path):
    import onnxruntime as ort
    from onnx import TensorProto, numpy_helper
    from onnx import helper as make

    rng = np.random.default_rng(1)
    weights = {"k": rng.standard_normal((4, 1, 3, 3)), "w": rng.standard_normal((5, 4))}
    graph = make.make_graph(
        [
            make.make_node("Conv", ["x", "k"], ["c"], kernel_shape=[3, 3]),
            make.make_node("GlobalAveragePool", ["c"], ["g"]),
            make.make_node("Flatten", ["g"], ["f"]),
            make.make_node("Gemm", ["f", "w"], ["y"], transB=1),
        ],
        "grey",
        [make.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 16, 16])],
        [make.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    out = tmp_path / "grey_fcn.onnx"
    convert_onnx(make.make_model(graph, opset_imports=[make.make_opsetid("", 13)]), out)
    image = rng.random((40, 56, 3)).astype(np.float32)
    from fc2conv.run import Runner

    got = Runner.from_onnx(out).logits(image)
    luma = image @ np.array([0.299, 0.587, 0.114], np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {session.get_inputs()[0].name: luma[None, None]})
    assert compare.relative_error(want[0], got) <= 1e-6
    assert len(fc2conv.detect(out, image, score_threshold=0.0).boxes) > 0


@pytest.mark.parametrize("then", ["Reshape", "MatMul"])
def test_channels_last_pooling_that_keeps_its_axes(then):
    """Keras' GlobalAveragePooling2D(keepdims=True): N×1×1×C, reshaped to N×C, converts; so
    does a layer on the N×1×1×C vector itself (a MatMul over its last axis, the features), as
    PyTorch exports ``x.permute(0, 2, 3, 1).mean((1, 2), keepdim=True)`` → Linear."""
    from onnx import TensorProto, numpy_helper
    from onnx import helper as make

    rng = np.random.default_rng(2)
    weights = {
        "k": rng.standard_normal((4, 3, 3, 3)),
        "w": rng.standard_normal((4, 5)),
        "s": np.array([-1, 4]),
    }
    head = ["Reshape", ["g", "s"], ["f"]] if then == "Reshape" else ["Identity", ["g"], ["f"]]
    graph = make.make_graph(
        [
            make.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
            make.make_node("Conv", ["t", "k"], ["c"], kernel_shape=[3, 3]),
            make.make_node("Transpose", ["c"], ["t2"], perm=[0, 2, 3, 1]),
            make.make_node("ReduceMean", ["t2"], ["g"], axes=[1, 2], keepdims=1),
            make.make_node(*head),
            make.make_node("MatMul", ["f", "w"], ["y"]),
        ],
        "nhwc_keep",
        [make.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 16, 3])],
        [
            make.make_tensor_value_info(
                "y", TensorProto.FLOAT, [1, 5] if then == "Reshape" else [1, 1, 1, 5]
            )
        ],
        [
            numpy_helper.from_array(v.astype(np.int64 if k == "s" else np.float32), k)
            for k, v in weights.items()
        ],
    )
    model = make.make_model(graph, opset_imports=[make.make_opsetid("", 13)])
    image = np.random.default_rng(3).standard_normal((1, 3, 16 + 2, 16 + 3)).astype(np.float32)
    maps = assert_every_cell_is_its_window(model, convert_onnx(model), image, True)
    assert maps.shape == (5, 3, 4)


def test_padding_is_noted_in_the_plan():
    """As for PyTorch models: cells of a padded trunk read beyond their window. (The
    preprocessing is given, so that no note says it is unknown.)"""
    known = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    plain = convert_onnx(small_classifier("global_max"), verify=False, **known)
    assert plain.notes == []
    model = small_classifier("global_max")
    conv = next(node for node in model.graph.node if node.op_type == "Conv")
    conv.attribute.append(onnx.helper.make_attribute("pads", [1, 1, 1, 1]))
    padded = convert_onnx(model, **known)
    assert len(padded.notes) == 1 and "pad their input" in padded.notes[0]
    assert f"note: {padded.notes[0]}" in str(padded)
