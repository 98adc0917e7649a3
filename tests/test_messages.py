"""One-line answers to the mistakes a new user makes on the command line, each naming what to
do: a mistyped file, a class in the wrong case, --out with a folder, an output folder that takes
no files (all checked before the model runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from fc2conv.cli import main


@pytest.fixture()
def photo(tmp_path) -> Path:
    path = tmp_path / "photos" / "p.png"
    path.parent.mkdir()
    Image.new("RGB", (96, 80), (200, 30, 30)).save(path)
    return path


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_a_mistyped_model_file_gets_the_files_answer(shapes_onnx, photo, tmp_path) -> None:
    typo = str(shapes_onnx)[:-1]  # shapes_fcn.onn
    done = run("detect", typo, str(photo), "--out", str(tmp_path / "a.png"))
    assert done.exit_code == 1
    assert f"{typo} does not exist (and is not a model name); check the path" in done.output
    assert "did you mean" not in done.output


def test_a_class_in_another_case_is_suggested(shapes_onnx, photo, tmp_path) -> None:
    done = run(
        "heatmap", str(shapes_onnx), str(photo), "--out", str(tmp_path / "h.png"), "--class", "Star"
    )
    assert done.exit_code == 1 and "no class 'Star'; did you mean star" in done.output


def test_out_with_a_folder_says_the_folder_is_not_one_image(shapes_onnx, photo, tmp_path) -> None:
    done = run("detect", str(shapes_onnx), str(photo.parent), "--out", str(tmp_path / "a.png"))
    assert done.exit_code == 2
    assert (
        f"--out writes the results of one image file, and {photo.parent} is a folder" in done.output
    )


def test_an_output_folder_that_takes_no_files_is_refused_first(shapes_onnx, photo) -> None:
    if not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    done = run("detect", str(shapes_onnx), str(photo), "--out", "/proc/x.png")
    assert done.exit_code == 1 and "folder /proc does not take files" in done.output
    assert "loading" not in done.output and "partial" not in done.output


def test_one_image_can_give_json_only_and_top_leaves_out_background(
    shapes_onnx, photo, tmp_path
) -> None:
    import json

    found = tmp_path / "found.json"
    done = run("detect", str(shapes_onnx), str(photo), "--json", str(found), "--quiet")
    assert done.exit_code == 0, done.output
    assert json.loads(found.read_text())["detections"] is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["found.json", "photos"]
    maps = tmp_path / "maps.json"
    done = run("heatmap", str(shapes_onnx), str(photo), "--json", str(maps), "--quiet")
    assert done.exit_code == 0, done.output
    top = [entry["class"] for entry in json.loads(maps.read_text())["top"]]
    assert len(top) == 5 and "background" not in top


def test_inspect_of_a_written_file_names_every_class(shapes_onnx) -> None:
    done = run("inspect", str(shapes_onnx))
    assert done.exit_code == 0
    assert "class names: background, circle, square, triangle, star, cross" in done.output


def test_detect_takes_a_class_filter(shapes_onnx) -> None:
    """--class (classes= in Python) keeps the named classes' proposals only; a group "a,b"
    names several; an unknown name is suggested before the model runs."""
    import fc2conv
    from fc2conv.shapes.scenes import draw_scene

    scene = draw_scene(3, width=320, height=240)
    everything = fc2conv.detect(shapes_onnx, scene.image)
    present = sorted({item["class"] for item in everything.as_list()})
    assert len(present) >= 2
    only = fc2conv.detect(shapes_onnx, scene.image, classes=[present[0]])
    assert {item["class"] for item in only.as_list()} == {present[0]}
    both = fc2conv.detect(shapes_onnx, scene.image, classes=[",".join(present[:2])])
    assert {item["class"] for item in both.as_list()} == set(present[:2])
    assert only.settings["classes"] == [present[0]]
