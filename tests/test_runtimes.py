"""Running an exported model in OpenVINO (fp32, and bf16 on CPUs that have it) instead of
onnxruntime: the same maps and detections, and one clear line for each bad choice."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import fc2conv
from fc2conv.cli import main
from fc2conv.run import Runner
from fc2conv.shapes.scenes import draw_scene

openvino = pytest.importorskip("openvino")

HAS_BF16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return draw_scene(31, width=320, height=240).image.astype(np.float32) / 255


def test_openvino_fp32_gives_onnxruntimes_maps_and_detections(shapes_onnx, scene) -> None:
    reference = Runner.from_onnx(shapes_onnx)
    runner = Runner.from_onnx(shapes_onnx, runtime="openvino")
    assert runner.runtime == "openvino" and runner.session.precision == "fp32"
    expected, actual = reference.logits(scene), runner.logits(scene)
    assert expected.shape == actual.shape and expected.shape[1:] == (23, 33)
    scale = np.abs(expected).max()
    assert scale > 1  # class scores of a trained model, not values near zero
    assert np.abs(actual - expected).max() / scale < 1e-4
    found, again = fc2conv.detect(reference, scene), fc2conv.detect(runner, scene)
    assert len(found) > 0 and found.as_list() == again.as_list()


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bf16 arithmetic")
def test_bf16_keeps_the_classes_of_almost_every_cell(shapes_onnx, scene) -> None:
    fp32 = Runner.from_onnx(shapes_onnx, runtime="openvino").logits(scene)
    runner = Runner.from_onnx(shapes_onnx, runtime="openvino", precision="bf16")
    assert runner.session.precision == "bf16"
    bf16 = runner.logits(scene)
    assert (fp32.argmax(0) == bf16.argmax(0)).mean() >= 0.99


@pytest.mark.skipif(HAS_BF16, reason="this CPU computes in bf16")
def test_bf16_on_a_cpu_without_it_is_refused_not_run_in_fp32(shapes_onnx) -> None:
    with pytest.raises(
        fc2conv.Fc2ConvError,
        match=r"this CPU has no bf16 arithmetic.*drop --precision bf16 to run in fp32",
    ):
        Runner.from_onnx(shapes_onnx, runtime="openvino", precision="bf16")


def test_bad_runtime_choices_are_one_line_each(shapes_onnx, tmp_path, monkeypatch) -> None:
    image = tmp_path / "scene.png"
    Image.fromarray(draw_scene(3, width=160, height=120).image).save(image)
    out = tmp_path / "d.png"
    cli = CliRunner()

    def run(*extra: str) -> str:
        result = cli.invoke(
            main, ["detect", str(shapes_onnx), str(image), "--out", str(out), *extra]
        )
        assert result.exit_code == 1 and not out.exists(), result.output
        assert "Traceback" not in result.output
        return result.output.strip()

    assert (
        run("--precision", "bf16") == "error: onnxruntime does not run bf16: use --runtime openvino"
    )
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    assert run("--runtime", "openvino") == (
        "error: the OpenVINO runtime needs the openvino package: pip install 'fc2conv[openvino]'"
    )
    with pytest.raises(fc2conv.Fc2ConvError, match=r"apply to exported \.onnx files; shapes runs"):
        fc2conv.open_model("shapes", runtime="openvino")
