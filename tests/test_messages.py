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
    both = fc2conv.detect(shapes_onnx, scene.image, classes=present[:2])
    assert {item["class"] for item in both.as_list()} == set(present[:2])
    assert only.settings["classes"] == [present[0]]
    # a group is one object: its label, after the model's classes, scores the members' sum
    group = fc2conv.detect(shapes_onnx, scene.image, classes=[",".join(present[:2])])
    assert [item["class"] for item in group.as_list()] == ["+".join(present[:2])] * len(group)
    assert group.labels.tolist() == [len(everything.classes)] * len(group)
    assert 1 <= len(group) <= len(both)


def test_labels_of_overlapping_boxes_do_not_cover_each_other() -> None:
    from fc2conv.run.render import LABEL_HEIGHT, _label_place

    placed: list[tuple[float, float, float, float]] = []
    first = _label_place((40, 60, 140, 160), 10, (400, 300), placed)
    _label_place((45, 62, 150, 170), 10, (400, 300), placed)
    assert first == (40, 60 - LABEL_HEIGHT)  # above its box
    (x1, y1, w1, h1), (x2, y2, w2, h2) = placed
    assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1
    top = _label_place((0, 0, 100, 80), 10, (400, 300), [])
    assert top == (0, 0)  # a box at the top edge: its label inside, not outside the picture


def test_a_faint_heatmap_scales_its_bar_and_says_so(tmp_path) -> None:
    """Random weights give probabilities near 1/classes everywhere: the bar spans 0 to the
    highest, labelled, instead of a blank-looking 0-1 overlay."""
    import matplotlib.pyplot as plt
    import numpy as np

    import fc2conv.run.render as render
    from fc2conv.run.heatmaps import Heatmap
    from fc2conv.run.pyramid import Level

    scores = np.full((3, 2, 2), 0.05, np.float32)
    scores[0, 0, 0] = 0.1
    rows, cols = np.meshgrid(np.arange(2) * 16.0, np.arange(2) * 16.0, indexing="ij")
    boxes = np.stack([cols, rows, cols + 32, rows + 32], -1).astype(np.float32)  # stride 16
    level = Level(1.0, scores, boxes)
    result = Heatmap([level], ["a", "b", "c"], (64, 64), (16, 16), (32, 32), True)
    labels: list[str] = []
    real = plt.Figure.colorbar

    def colorbar(self, *args, **kwargs):
        bar = real(self, *args, **kwargs)
        labels.append(bar)
        return bar

    plt.Figure.colorbar = colorbar
    try:
        render.save_heatmaps(np.zeros((64, 64, 3)), result, tmp_path / "h.png", title="x.png")
    finally:
        plt.Figure.colorbar = real
    assert all("to the highest" in bar.ax.get_ylabel() for bar in labels)
    assert all(abs(bar.norm.vmax - 0.1) < 1e-6 for bar in labels)


def test_sizes_in_json_are_labelled_and_old_files_still_read() -> None:
    """Records name width and height; a COCO file made from records of fc2conv 0.2 (a
    [height, width] list) gets the same sizes."""
    from fc2conv.run.batch import coco_detections
    from fc2conv.run.images import size_json

    found = [{"box": [1, 2, 11, 22], "score": 0.9, "label": 0, "class": "a"}]
    new = {"path": "x.png", "error": None, "image_size": size_json(480, 640), "detections": found}
    old = {**new, "image_size": [480, 640]}
    assert new["image_size"] == {"width": 640, "height": 480}
    images = [coco_detections([record], ["a"])["images"][0] for record in (new, old)]
    assert images[0] == images[1] and (images[0]["width"], images[0]["height"]) == (640, 480)
