"""Score maps for WSOL benchmarks: wsolevaluation's layout, the labelled class's map in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fc2conv.errors import Fc2ConvError
from fc2conv.run.heatmaps import Heatmap
from fc2conv.run.pyramid import Level
from fc2conv.run.scoremaps import read_split, scoremap, unit_scaled, write_scoremaps
from fc2conv.shapes.scenes import CLASSES, draw_scene


def split(tmp_path: Path, count: int = 3) -> tuple[Path, Path, dict]:
    """A split of one-shape scenes: images/val/<seed>.png, metadata with their labels."""
    images, metadata = tmp_path / "images", tmp_path / "metadata"
    (images / "val").mkdir(parents=True)
    metadata.mkdir()
    truth = {}
    for seed in range(count):
        scene = draw_scene(700 + seed, width=320, height=240, count=(1, 1), sizes=(60, 90))
        image_id = f"val/{seed:03d}.png"
        Image.fromarray(scene.image).save(images / image_id)
        truth[image_id] = (scene.labels[0], scene.boxes[0])
    (metadata / "image_ids.txt").write_text("".join(f"{i}\n" for i in truth))
    labels = "".join(f"{i},{label}\n" for i, (label, _) in truth.items())
    (metadata / "class_labels.txt").write_text(labels)
    return images, metadata, truth


def test_each_image_gets_its_labelled_class_map_peaking_on_the_object(shapes_onnx, tmp_path):
    images, metadata, truth = split(tmp_path)
    out = tmp_path / "scoremaps"
    assert write_scoremaps(shapes_onnx, metadata, images, out) == []
    for image_id, (label, box) in truth.items():
        scoremap = np.load(out / f"{image_id}.npy")
        assert scoremap.shape == (224, 224) and scoremap.dtype == np.float32
        assert scoremap.min() == 0 and scoremap.max() == 1
        y, x = np.unravel_index(int(np.argmax(scoremap)), scoremap.shape)
        x1, y1, x2, y2 = (v * 224 / side for v, side in zip(box, (320, 240, 320, 240), strict=True))
        assert x1 - 8 <= x <= x2 + 8 and y1 - 8 <= y <= y2 + 8, (CLASSES[label], (x, y), box)
    assert not list(out.rglob("*.partial"))


def test_labels_map_to_classes_and_images_keep_their_size(shapes_onnx, tmp_path):
    images, metadata, truth = split(tmp_path, 1)
    ((image_id, (label, _)),) = truth.items()
    (metadata / "class_labels.txt").write_text(f"{image_id},0\n")  # the benchmark's own label
    out = tmp_path / "maps"
    write_scoremaps(shapes_onnx, metadata, images, out, classes=[CLASSES[label]], size=None)
    own = np.load(out / f"{image_id}.npy")
    assert own.shape == (240, 320) and own.max() == 1


def test_a_missing_image_is_reported_and_the_rest_written(shapes_onnx, tmp_path):
    images, metadata, truth = split(tmp_path, 2)
    gone = next(iter(truth))
    (images / gone).unlink()
    failed = write_scoremaps(shapes_onnx, metadata, images, tmp_path / "out")
    assert [image_id for image_id, _ in failed] == [gone]
    assert not (tmp_path / "out" / f"{gone}.npy").exists()
    assert len(list((tmp_path / "out").rglob("*.npy"))) == 1


@pytest.mark.parametrize(
    "labels, message",
    [
        ("val/000.png,99\n", "class label 99 names no class (shapes has 6); pass classes"),
        ("val/000.png cat\n", "class_labels.txt:1: expected '<image id>,<class label>'"),
        ("", "has no label for 1 image id(s), e.g. val/000.png"),
    ],
)
def test_bad_metadata_is_refused_before_any_map(shapes_onnx, tmp_path, labels, message):
    images, metadata, _ = split(tmp_path, 1)
    (metadata / "class_labels.txt").write_text(labels)
    with pytest.raises(Fc2ConvError) as refused:
        write_scoremaps(shapes_onnx, metadata, images, tmp_path / "out")
    assert message in str(refused.value)
    assert not (tmp_path / "out").exists()


def test_a_split_without_its_files_says_what_it_needs(tmp_path):
    with pytest.raises(Fc2ConvError, match=r"needs image_ids\.txt and class_labels\.txt"):
        read_split(tmp_path)


def test_unit_scaling_is_wsolevaluations():
    assert unit_scaled(np.array([[2.0, 4.0], [3.0, 6.0]])).tolist() == [[0, 0.5], [0.25, 1]]
    assert not unit_scaled(np.full((2, 2), 5.0)).any()
    assert not unit_scaled(np.array([1.0, np.nan])).any()


def test_the_whole_image_view_does_not_flatten_the_map():
    """An object that fills the photo: the whole-image view's one cell scores highest, and a
    map fused with it would be constant (zeros once scaled); without it the map locates."""
    halves = np.array([[[0, 0, 32, 64], [32, 0, 64, 64]]], np.float32)
    fine = Level(1.0, np.array([[[0.9, 0.1]]], np.float32), halves)
    whole = np.array([[[0, 0, 64, 64]]], np.float32)
    view = Level(0.5, np.array([[[0.95]]], np.float32), whole, whole_image=True)
    result = Heatmap([fine, view], ["a"], (64, 64), (32, 32), (64, 32))
    assert float(np.ptp(result.dense("a"))) == 0  # what the view does to the fused map
    found = scoremap(result, "a", None)
    assert found[:, :16].min() == 1 and found[:, 48:].max() == 0
    alone = Heatmap([view], ["a"], (64, 64), (32, 32), (64, 32))
    assert not scoremap(alone, "a", None).any()  # nothing else to locate with: constant
