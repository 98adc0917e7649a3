"""Static int8 quantisation of a converted model, calibrated on images, and its report."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import fc2conv
from fc2conv.cli import main
from fc2conv.run.quantize import quantize
from fc2conv.shapes.scenes import draw_scene


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    for seed in range(200, 216):
        Image.fromarray(draw_scene(seed, width=240, height=180).image).save(folder / f"{seed}.png")
    return folder


def test_int8_agrees_with_fp32_on_held_out_scenes(shapes_onnx, scenes, tmp_path) -> None:
    out = tmp_path / "shapes_int8.onnx"
    report = quantize(shapes_onnx, [scenes], out)
    assert report.calibration == 12 and report.held_out == 4
    assert report.cells > 1000
    assert report.argmax_agreement >= 0.97  # measured 0.999 with these seeds
    assert report.boxes_fp32 > 0 and report.boxes_matched >= report.boxes_fp32 - 1
    meta = fc2conv.read_metadata(out)
    assert (
        meta["precision"] == "int8"
        and meta["geometry"] == fc2conv.read_metadata(shapes_onnx)["geometry"]
    )
    import onnx

    ops = {node.op_type for node in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    found = fc2conv.detect(out, scenes / "200.png")  # the run path takes it as it is
    assert len(found) > 0
    with pytest.raises(fc2conv.Fc2ConvError, match="already int8"):
        quantize(out, [scenes], tmp_path / "again.onnx")


def test_quantize_refuses_too_few_images_and_existing_output(shapes_onnx, scenes, tmp_path) -> None:
    few = tmp_path / "few"
    few.mkdir()
    for path in sorted(scenes.iterdir())[:5]:
        (few / path.name).write_bytes(path.read_bytes())
    result = CliRunner().invoke(
        main,
        [
            "quantize",
            str(shapes_onnx),
            "--calibration",
            str(few),
            "--out",
            str(tmp_path / "q.onnx"),
        ],
    )
    assert result.exit_code == 1 and "calibration images; int8 needs at least 8" in result.output
    assert not (tmp_path / "q.onnx").exists()
    (tmp_path / "q.onnx").write_bytes(b"")
    result = CliRunner().invoke(
        main,
        [
            "quantize",
            str(shapes_onnx),
            "--calibration",
            str(scenes),
            "--out",
            str(tmp_path / "q.onnx"),
        ],
    )
    assert result.exit_code == 1 and "already exists; pass --force" in result.output
