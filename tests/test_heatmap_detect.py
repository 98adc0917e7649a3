"""Heatmaps and detections from the bundled shapes classifier, in PyTorch and in onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import fc2conv
from fc2conv.cli import main
from fc2conv.pipeline import prepare
from fc2conv.shapes.quality import evaluate
from fc2conv.shapes.scenes import draw_scene
from fc2conv.shapes.spec import CLASSES
from fc2conv.sources import load_model


@pytest.fixture(scope="module")
def shapes() -> fc2conv.FullyConvolutionalModel:
    return prepare("shapes").converted


@pytest.fixture(scope="module")
def shapes_onnx(shapes, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "shapes_fcn.onnx"
    fc2conv.export_onnx(shapes, path)
    return path


def test_bundled_classifier_is_exact_and_small(shapes) -> None:
    loaded = load_model("shapes")
    report = fc2conv.verify(loaded.model, shapes)
    assert report.output_scale > 0.1
    assert "classifier.0: Linear(3072→96) → Conv2d(48→96, kernel 8x8)" in str(shapes.plan)
    weights = Path(fc2conv.__file__).with_name("data") / "shapes.safetensors"
    assert weights.stat().st_size <= 5_000_000


def test_heatmap_shapes_and_boxes(shapes) -> None:
    scene = draw_scene(3, width=200, height=150)
    result = fc2conv.heatmap(shapes, Image.fromarray(scene.image), scales=(1.0,))
    rows, cols = shapes.output_size(150, 200)
    (level,) = result.levels
    assert level.scores.shape == (len(CLASSES), rows, cols)
    assert np.allclose(level.scores.sum(0), 1, atol=1e-5)  # softmax over classes
    assert level.boxes.shape == (rows, cols, 4)
    assert level.boxes[0, 1].tolist() == [8, 0, 72, 64]
    assert result.dense("star").shape == (150, 200)


def test_heatmap_pyramid_levels_are_the_model_on_the_resized_image(shapes) -> None:
    """Every level is the single-scale map of the resized image, its boxes scaled back; the
    fused map is each pixel's maximum over the levels."""
    from fc2conv.run.images import load_image, resize

    scene = draw_scene(3, width=200, height=150)
    result = fc2conv.heatmap(shapes, scene.image)
    *levels, whole = result.levels
    assert [level.scale for level in levels] == list(
        fc2conv.run.pyramid_scales(shapes.geometry, (150, 200))
    )
    assert levels[0].scale == 2.0 and len(levels) >= 4
    # the classifier's own view: the whole image at the canonical input, one cell, whole box
    assert whole.whole_image and whole.scores.shape[1:] == (1, 1)
    assert whole.boxes[0, 0].tolist() == [0, 0, 200, 150]
    view = resize(load_image(scene.image), shapes.geometry.canonical_size)
    (alone_view,) = fc2conv.heatmap(shapes, view, scales=(1.0,)).levels
    assert np.allclose(whole.scores, alone_view.scores, atol=1e-6)
    half = next(level for level in result.levels if level.scale == 0.5)
    small = resize(load_image(scene.image), (75, 100))
    (alone,) = fc2conv.heatmap(shapes, small, scales=(1.0,)).levels
    assert np.allclose(half.scores, alone.scores, atol=1e-6)
    assert np.allclose(half.boxes, alone.boxes * 2)
    fused = result.dense("star")
    singles = [
        fc2conv.heatmap(shapes, scene.image, scales=(level.scale,)).dense("star")
        for level in levels
    ]
    singles.append(np.full((150, 200), whole.scores[4, 0, 0]))
    assert np.allclose(fused, np.max(singles, axis=0), atol=1e-6)
    peak = result.peak("star")
    best = max(result.levels, key=lambda level: level.scores[4].max())
    assert peak.scale == best.scale and peak.score == pytest.approx(best.scores[4].max())


def test_a_shape_larger_than_the_window_is_hot_on_the_pyramid(shapes) -> None:
    """The demo scene's circle (65 px, over the 64 px window) is cold at scale 1 only."""
    scene = draw_scene(9)
    circle = scene.boxes[list(scene.labels).index(CLASSES.index("circle"))]
    single = fc2conv.heatmap(shapes, scene.image, scales=(1.0,)).peak("circle")
    peak = fc2conv.heatmap(shapes, scene.image).peak("circle")
    assert peak.score >= 0.9 > single.score
    assert circle[0] <= peak.x <= circle[2] and circle[1] <= peak.y <= circle[3]


def test_heatmap_accepts_arrays_tensors_and_class_subsets(shapes) -> None:
    scene = draw_scene(4, width=160, height=120)
    from_array = fc2conv.heatmap(
        shapes, scene.image, classes=["circle", "cross"], probabilities=False
    )
    tensor = torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255
    from_tensor = fc2conv.heatmap(shapes, tensor, classes=[1, 5], probabilities=False)
    assert from_array.classes == ["circle", "cross"]
    for one, other in zip(from_array.levels, from_tensor.levels, strict=True):
        assert one.scores.shape[0] == 2
        assert np.allclose(one.scores, other.scores, atol=1e-5)


def test_onnx_and_torch_heatmaps_agree(shapes, shapes_onnx) -> None:
    scene = draw_scene(5, width=203, height=171)
    torch_maps = fc2conv.heatmap(shapes, scene.image).levels
    onnx_maps = fc2conv.heatmap(shapes_onnx, scene.image).levels
    for one, other in zip(torch_maps, onnx_maps, strict=True):
        assert np.abs(one.scores - other.scores).max() < 1e-4


def test_too_small_image_is_a_clear_error(shapes, shapes_onnx) -> None:
    tiny = np.zeros((40, 100, 3), np.uint8)
    for model in (shapes, shapes_onnx):
        with pytest.raises(
            fc2conv.InputSizeError,
            match=r"the 100×40 image is smaller than its 64×64 minimum \(width×height\) at every scale \(1\); add a scale of at least 1.60",
        ):
            fc2conv.heatmap(model, tiny, scales=(1.0,))
        # the default pyramid fits, then the whole image at 64x64 (its tighter axis at 0.64)
        assert fc2conv.heatmap(model, tiny).scales == (2.0, 1.6, 0.64)


def test_detect_says_which_scale_a_small_image_needs(shapes) -> None:
    small = np.zeros((48, 100, 3), np.uint8)
    with pytest.raises(fc2conv.InputSizeError, match=r"add a scale of at least 1\.33"):
        fc2conv.detect(shapes, small, scales=(1.0, 0.8))
    assert len(fc2conv.detect(shapes, small, scales=(1.5,))) == 0  # blank image, no boxes


def test_detect_finds_the_shapes_of_a_scene(shapes) -> None:
    scene = draw_scene(11)
    found = fc2conv.detect(shapes, scene.image)
    assert len(found) >= len(scene.labels) - 1
    assert set(found.labels.tolist()) <= set(range(1, len(CLASSES)))  # never background
    data = json.loads(found.to_json())
    assert {"box", "score", "label", "class"} <= set(data["detections"][0])
    assert data["image_size"] == {"width": 640, "height": 480} and data["model"] == "shapes"
    assert data["scales"][0] == pytest.approx(1.25**3, abs=1e-4)


def test_box_fraction_comes_from_the_model_or_the_caller(shapes_onnx) -> None:
    scene = draw_scene(11)
    own = fc2conv.detect(shapes_onnx, scene.image)
    assert own.settings["box_fraction"] == pytest.approx(0.68)  # the bundled model's metadata
    small = fc2conv.detect(shapes_onnx, scene.image, box_fraction=0.34)
    assert small.settings["box_fraction"] == 0.34
    width = lambda found: np.median(found.boxes[:, 2] - found.boxes[:, 0])  # noqa: E731
    assert width(small) < 0.8 * width(own)
    with pytest.raises(fc2conv.Fc2ConvError, match=r"box fraction must lie in \(0, 1\]"):
        fc2conv.detect(shapes_onnx, scene.image, box_fraction=0)


def test_quality_on_seeded_scenes(shapes_onnx) -> None:
    """A looser, shorter version of benchmarks/shapes_quality.py (which uses 50 scenes)."""
    quality = evaluate(shapes_onnx, range(2000, 2010))
    assert quality.precision >= 0.8 and quality.recall >= 0.8, quality
    assert quality.peak_rate >= 0.85, quality


def test_cli_heatmap_and_detect(shapes_onnx, tmp_path: Path) -> None:
    scene = draw_scene(9)
    image = tmp_path / "scene.png"
    Image.fromarray(scene.image).save(image)
    runner = CliRunner()
    overlay = tmp_path / "overlay.png"
    result = runner.invoke(
        main,
        [
            *["heatmap", str(shapes_onnx), str(image), "--class", "star"],
            *["--output", "scores", "--out", str(overlay)],
        ],
    )
    assert result.exit_code == 0, result.output
    assert "star: peak" in result.output and Image.open(overlay).size[0] > 300

    boxes, data = tmp_path / "boxes.png", tmp_path / "boxes.json"
    result = runner.invoke(
        main, ["detect", "shapes", str(image), "--out", str(boxes), "--json", str(data)]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(boxes).size == (640, 480)
    assert len(json.loads(data.read_text())["detections"]) >= 4

    result = runner.invoke(
        main,
        ["heatmap", "shapes", str(image), "--class", "hexagon", "--out", str(overlay), "--force"],
    )
    assert result.exit_code == 1 and "no class 'hexagon'" in result.output


def test_cli_exports_the_bundled_model(tmp_path: Path) -> None:
    out = tmp_path / "shapes_fcn.onnx"
    result = CliRunner().invoke(main, ["shapes", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "onnxruntime at 101x165" in result.output
    assert fc2conv.read_metadata(out)["classes"] == CLASSES


def test_demo_writes_its_pictures(tmp_path: Path) -> None:
    import subprocess
    import sys

    demo = Path(__file__).parents[1] / "examples" / "heatmap_demo.py"
    result = subprocess.run(
        [sys.executable, str(demo), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for picture in ("scene.png", "heatmaps.png", "detections.png"):
        assert Image.open(tmp_path / picture).size[0] >= 640
    found = json.loads((tmp_path / "detections.json").read_text())["detections"]
    assert {item["class"] for item in found} == {"circle", "square", "triangle", "star", "cross"}


def test_multi_output_model_reads_its_class_scores_and_no_second_softmax(tmp_path: Path) -> None:
    """The face stage returns (box offsets, face probabilities from nn.Softmax): heatmaps read
    the probabilities as they are, from PyTorch and from the exported file."""
    from classifiers import FaceStage
    from helpers import reinit

    converted = fc2conv.convert(reinit(FaceStage()), (24, 24), name="faces")
    assert [(o.name, o.channels, o.ending) for o in converted.outputs] == [
        ("output_0", 4, "scores"),
        ("output_1", 2, "softmax"),
    ]
    path = tmp_path / "faces.onnx"
    fc2conv.export_onnx(converted, path)
    image = np.random.default_rng(0).random((60, 50, 3)).astype(np.float32)
    with torch.no_grad():
        expected = converted(torch.from_numpy(image.transpose(2, 0, 1))[None])[1][0].numpy()
    for model in (converted, path):
        (maps,) = fc2conv.heatmap(model, image, scales=(1.0,)).levels
        assert maps.scores.shape == (2, *converted.output_size(60, 50))
        assert np.allclose(maps.scores, expected, atol=1e-5)  # no second softmax
        boxes = fc2conv.heatmap(model, image, output="output_0", probabilities=False)
        assert boxes.levels[0].scores.shape[0] == 4
    import onnx

    assert [o.name for o in onnx.load(str(path)).graph.output] == ["output_0", "output_1"]


class TwoScores(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.a = torch.nn.Linear(4, 3)
        self.b = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.conv(x).mean((2, 3))
        return {"species": self.a(pooled), "colour": self.b(pooled)}


def test_ambiguous_outputs_are_listed_and_chosen_by_name() -> None:
    converted = fc2conv.convert(TwoScores(), (16, 16))
    image = np.zeros((20, 20, 3), np.float32)
    with pytest.raises(fc2conv.Fc2ConvError) as info:
        fc2conv.heatmap(converted, image)
    message = str(info.value)
    assert "cannot tell which output holds the class scores" in message
    assert "0: species (3 channels, scores), 1: colour (3 channels, scores)" in message
    colour = fc2conv.heatmap(converted, image, output="colour", scales=(1.0,))
    assert colour.levels[0].scores.shape == (3, 5, 5)
    with pytest.raises(fc2conv.Fc2ConvError, match="no output named 'size'"):
        fc2conv.heatmap(converted, image, output="size")


def test_sigmoid_heads_give_per_class_probabilities() -> None:
    class MultiLabel(TwoScores):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return torch.sigmoid(self.a(self.conv(x).mean((2, 3))))

    converted = fc2conv.convert(MultiLabel(), (16, 16))
    assert converted.outputs[0].ending == "sigmoid"
    image = np.random.default_rng(1).random((20, 20, 3))
    (maps,) = fc2conv.heatmap(converted, image, scales=(1.0,)).levels
    assert not np.allclose(maps.scores.sum(0), 1)  # independent, not a softmax
    assert maps.scores.min() > 0 and maps.scores.max() < 1
