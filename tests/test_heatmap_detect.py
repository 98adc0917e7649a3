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
    result = fc2conv.heatmap(shapes, Image.fromarray(scene.image))
    rows, cols = shapes.output_size(150, 200)
    assert result.scores.shape == (len(CLASSES), rows, cols)
    assert np.allclose(result.scores.sum(0), 1, atol=1e-5)  # softmax over classes
    assert result.boxes.shape == (rows, cols, 4)
    assert result.boxes[0, 1].tolist() == [8, 0, 72, 64]
    assert result.dense("star").shape == (150, 200)


def test_heatmap_accepts_arrays_tensors_and_class_subsets(shapes) -> None:
    scene = draw_scene(4, width=160, height=120)
    from_array = fc2conv.heatmap(
        shapes, scene.image, classes=["circle", "cross"], probabilities=False
    )
    tensor = torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255
    from_tensor = fc2conv.heatmap(shapes, tensor, classes=[1, 5], probabilities=False)
    assert from_array.classes == ["circle", "cross"]
    assert np.allclose(from_array.scores, from_tensor.scores, atol=1e-5)


def test_onnx_and_torch_heatmaps_agree(shapes, shapes_onnx) -> None:
    scene = draw_scene(5, width=203, height=171)
    torch_maps = fc2conv.heatmap(shapes, scene.image).scores
    onnx_maps = fc2conv.heatmap(shapes_onnx, scene.image).scores
    assert np.abs(torch_maps - onnx_maps).max() < 1e-4


def test_too_small_image_is_a_clear_error(shapes, shapes_onnx) -> None:
    tiny = np.zeros((40, 100, 3), np.uint8)
    for model in (shapes, shapes_onnx):
        with pytest.raises(fc2conv.InputSizeError, match="input 40x100 is smaller than the 64x64"):
            fc2conv.heatmap(model, tiny)


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
    items = json.loads(found.to_json())
    assert {"box", "score", "label", "class"} <= set(items[0])


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
    assert len(json.loads(data.read_text())) >= 4

    result = runner.invoke(
        main, ["heatmap", "shapes", str(image), "--class", "hexagon", "--out", str(overlay)]
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
    found = json.loads((tmp_path / "detections.json").read_text())
    assert {item["class"] for item in found} == {"circle", "square", "triangle", "star", "cross"}


def test_multi_output_model_reads_its_class_scores_and_no_second_softmax(tmp_path: Path) -> None:
    """The face stage returns (box offsets, face probabilities from nn.Softmax): heatmaps read
    the probabilities as they are, from PyTorch and from the exported file."""
    from helpers import reinit
    from test_custom_models import FaceStage

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
        maps = fc2conv.heatmap(model, image)
        assert maps.scores.shape == (2, *converted.output_size(60, 50))
        assert np.allclose(maps.scores, expected, atol=1e-5)  # no second softmax
        boxes = fc2conv.heatmap(model, image, output="output_0", probabilities=False)
        assert boxes.scores.shape[0] == 4
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
    assert fc2conv.heatmap(converted, image, output="colour").scores.shape == (3, 5, 5)
    with pytest.raises(fc2conv.Fc2ConvError, match="no output named 'size'"):
        fc2conv.heatmap(converted, image, output="size")


def test_sigmoid_heads_give_per_class_probabilities() -> None:
    class MultiLabel(TwoScores):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return torch.sigmoid(self.a(self.conv(x).mean((2, 3))))

    converted = fc2conv.convert(MultiLabel(), (16, 16))
    assert converted.outputs[0].ending == "sigmoid"
    maps = fc2conv.heatmap(converted, np.random.default_rng(1).random((20, 20, 3)))
    assert not np.allclose(maps.scores.sum(0), 1)  # independent, not a softmax
    assert maps.scores.min() > 0 and maps.scores.max() < 1
