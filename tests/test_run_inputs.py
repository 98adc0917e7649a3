"""What a user feeds the run commands: images of every kind, big images, and bad options and
output paths, each refused in one line before the model runs, with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import fc2conv
from fc2conv.cli import main
from fc2conv.run import load_image
from fc2conv.shapes.scenes import draw_scene


@pytest.fixture(scope="module")
def shapes_onnx(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "shapes_fcn.onnx"
    result = CliRunner().invoke(main, ["shapes", "--out", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "scene.png"
    Image.fromarray(draw_scene(9).image).save(path)
    return path


def test_sixteen_bit_grey_reads_by_its_range(tmp_path: Path) -> None:
    grey = (np.linspace(0, 65535, 64 * 80).reshape(64, 80)).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    pixels = load_image(tmp_path / "grey16.png")
    assert pixels.shape == (64, 80, 3)
    assert np.allclose(pixels[..., 0], grey / 65535, atol=1e-6)  # not clipped to white
    assert np.allclose(load_image(grey), pixels)


def test_palette_cmyk_and_exif_rotation(tmp_path: Path) -> None:
    rgb = Image.fromarray(draw_scene(2, width=90, height=60).image)
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(tmp_path / "palette.png")
    assert np.allclose(load_image(tmp_path / "palette.png"), load_image(palette.convert("RGB")))
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert np.abs(load_image(tmp_path / "cmyk.jpg") - load_image(rgb)).mean() < 0.05
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: shown rotated by 90 degrees clockwise
    rgb.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    upright = load_image(tmp_path / "turned.jpg")
    assert upright.shape == (90, 60, 3)
    expected = load_image(rgb.transpose(Image.Transpose.ROTATE_270))
    assert np.abs(upright - expected).mean() < 0.05


def test_bad_images_are_one_line(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.png"
    Image.fromarray(draw_scene(2).image).save(tmp_path / "whole.png")
    truncated.write_bytes((tmp_path / "whole.png").read_bytes()[:5000])
    with pytest.raises(fc2conv.Fc2ConvError, match="cannot read image"):
        load_image(truncated)
    with pytest.raises(fc2conv.Fc2ConvError, match=r"must lie in \[0, 1\]"):
        load_image(np.full((10, 10, 3), 255.0))


def test_a_large_image_runs_within_the_maximal_size(shapes_onnx) -> None:
    """No level is larger than max_size; boxes are in the original image's pixels."""
    scene = draw_scene(9)
    big = np.asarray(Image.fromarray(scene.image).resize((2560, 1920)))  # 4x the scene
    maps = fc2conv.heatmap(shapes_onnx, big, max_size=1024)
    assert 0.4 / 2**0.5 <= max(maps.scales) <= 0.4  # 1024 / 2560
    circle = scene.boxes[list(scene.labels).index(1)] * 4
    peak = maps.peak("circle")
    assert circle[0] <= peak.x <= circle[2] and circle[1] <= peak.y <= circle[3]
    found = fc2conv.detect(shapes_onnx, big, max_size=1024)
    assert max(found.settings["scales"]) <= 0.4
    assert len(found) >= 4
    with pytest.raises(fc2conv.Fc2ConvError, match="larger than the maximal size 1024"):
        fc2conv.heatmap(shapes_onnx, big, scales=(1.0,), max_size=1024)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--top", "0"], "Invalid value for '--top'"),
        (["--scales", "1,0"], "is not a list of positive numbers"),
        (["--scales", "a"], "is not a list of positive numbers"),
        (["--max-size", "10"], "max size 10 is below the model's minimal input 64x64"),
        (["--out", "{tmp}/missing/a.png"], "folder {tmp}/missing does not exist"),
        (["--out", "{tmp}/a.bmpx"], "cannot write a picture as a.bmpx"),
        (["--json", "{tmp}/nodir/b.json"], "folder {tmp}/nodir does not exist"),
        (["--out", "{tmp}/exists.png"], "exists; pass --force to replace it"),
        (["--json", "{tmp}/a.png"], "--out, --json and --maps must name different files"),
    ],
)
def test_bad_run_options_are_one_line_and_write_nothing(
    shapes_onnx, scene_png, tmp_path: Path, options: list[str], message: str
) -> None:
    (tmp_path / "exists.png").write_bytes(b"keep")
    options = [o.replace("{tmp}", str(tmp_path)) for o in options]
    if "--out" not in options:
        options += ["--out", str(tmp_path / "a.png")]
    command = "heatmap" if "--top" in options or "--max-size" in options else "detect"
    result = CliRunner().invoke(main, [command, str(shapes_onnx), str(scene_png), *options])
    assert result.exit_code in (1, 2), result.output
    assert message.replace("{tmp}", str(tmp_path)) in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.png"]
    assert (tmp_path / "exists.png").read_bytes() == b"keep"


def test_a_truncated_model_file_is_one_line(shapes_onnx, scene_png, tmp_path) -> None:
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(shapes_onnx.read_bytes()[:50_000])
    result = CliRunner().invoke(
        main, ["heatmap", str(cut), str(scene_png), "--out", str(tmp_path / "a.png")]
    )
    assert result.exit_code == 1 and "not a complete ONNX model" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "a.png").exists()


def test_detect_thresholds_outside_zero_one_are_refused(shapes_onnx, scene_png, tmp_path) -> None:
    for option in ("--score-threshold", "--iou-threshold"):
        result = CliRunner().invoke(
            main,
            [
                "detect",
                str(shapes_onnx),
                str(scene_png),
                "--out",
                str(tmp_path / "a.png"),
                option,
                "1.5",
            ],
        )
        assert result.exit_code == 2 and "1.5 is not in the range 0<=x<=1" in result.output
    with pytest.raises(fc2conv.Fc2ConvError, match=r"score threshold must lie in \[0, 1\]"):
        fc2conv.detect(shapes_onnx, np.zeros((64, 64, 3)), score_threshold=-0.1)


def test_heatmap_json_maps_and_full_size_picture(shapes_onnx, scene_png, tmp_path: Path) -> None:
    out, data, maps = tmp_path / "maps.png", tmp_path / "maps.json", tmp_path / "maps.npz"
    result = CliRunner().invoke(
        main,
        [
            *["heatmap", str(shapes_onnx), str(scene_png), "--class", "circle", "--class", "5"],
            *["--class", "square,triangle"],
            *["--out", str(out), "--json", str(data), "--maps", str(maps), "--full-size"],
        ],
    )
    assert result.exit_code == 0, result.output
    assert "circle: peak" in result.output and "cross: peak" in result.output
    assert "square+triangle: peak" in result.output
    assert Image.open(out).size[0] >= 3 * 640  # three panels at the image's own size
    written = json.loads(data.read_text())
    assert written["model"] == "shapes" and written["image_size"] == {"width": 640, "height": 480}
    assert set(written["peaks"]) == {"circle", "cross", "square+triangle"}
    assert "background" not in [item["class"] for item in written["top"]]  # as the console
    assert len(written["top"]) == 5
    assert written["peaks"]["circle"]["score"] >= 0.9
    geometry = fc2conv.read_metadata(shapes_onnx)["geometry"]
    expected = fc2conv.run.pyramid_scales(geometry, (480, 640))
    *pyramid, whole = written["levels"]
    assert [level["scale"] for level in pyramid] == [round(s, 4) for s in expected]
    assert whole == {"scale": 0.1, "map_size": [1, 1], "whole_image": True}  # 64 / 640
    arrays = np.load(maps)
    assert list(arrays["classes"]) == fc2conv.read_metadata(shapes_onnx)["classes"]
    assert arrays["level_0"].shape == (6, *written["levels"][0]["map_size"])


def test_class_groups_sum_their_members(shapes_onnx) -> None:
    scene = draw_scene(9)
    maps = fc2conv.heatmap(shapes_onnx, scene.image, scales=(1.0,))
    grouped = maps.select(["circle,square", ["star", 5], "triangle"])
    assert grouped.classes == ["circle+square", "star+cross", "triangle"]
    (level,), (group,) = maps.levels, grouped.levels
    assert np.allclose(group.scores[0], level.scores[1] + level.scores[2])
    assert np.allclose(group.scores[1], level.scores[4] + level.scores[5])
    direct = fc2conv.heatmap(shapes_onnx, scene.image, scales=(1.0,), classes=["circle,square"])
    assert np.allclose(direct.levels[0].scores[0], group.scores[0])
    with pytest.raises(fc2conv.Fc2ConvError, match="no class 'hexagon'"):
        fc2conv.heatmap(shapes_onnx, scene.image, classes=["circle,hexagon"])


def test_options_for_model_names_warn_with_an_onnx_file(shapes_onnx, scene_png, tmp_path) -> None:
    result = CliRunner().invoke(
        main,
        [
            *["detect", str(shapes_onnx), str(scene_png), "--out", str(tmp_path / "a.png")],
            *["--weights", "none", "--input-size", "64"],
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning: --weights, --input-size apply to model names" in result.output


def test_cam_pyramid_stops_at_the_canonical_input() -> None:
    """A cam-mode model takes inputs down to 1x1; its pyramid still stops where the image is as
    large as the classifier's canonical input, not at a few pixels."""
    from fc2conv.geometry import Geometry

    cam = Geometry((224, 224), (32, 32), (32, 32), (0, 0), (1, 1))
    scales = fc2conv.run.pyramid_scales(cam, (300, 451))
    assert scales[0] == 2.0 and round(300 * scales[-1]) == 224
