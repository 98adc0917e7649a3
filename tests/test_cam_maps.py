"""Class-activation maps (a model converted with mode="cam"): heatmaps run once on the image as it
is and give the map as the model gives it (its mean is the logits); detections run the window
model's windows (the map's means) and take each box from the map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from classifiers import Pooled
from click.testing import CliRunner
from helpers import reinit
from PIL import Image

import fc2conv
from fc2conv.cli import main

CLASSES = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture(scope="module")
def original() -> torch.nn.Module:
    """A seeded classifier: a trunk, a global mean, then a Linear."""
    return reinit(Pooled("AdaptiveAvgPool2d"), seed=3).eval()


@pytest.fixture(scope="module")
def models(original) -> dict[str, fc2conv.FullyConvolutionalModel]:
    """The classifier in both modes."""
    converted = {}
    for mode in ("window", "cam"):
        model = fc2conv.convert(original, (32, 32), mode=mode)
        model.metadata["classes"] = CLASSES
        converted[mode] = model
    return converted


@pytest.fixture(scope="module")
def cam_onnx(models, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cam") / "cam_fcn.onnx"
    fc2conv.export_onnx(models["cam"], path)
    return path


def image(height: int = 70, width: int = 90) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_a_cam_runs_once_on_the_image_as_it_is(models, original) -> None:
    cam = models["cam"]
    result = fc2conv.heatmap(cam, image())
    (level,) = result.levels
    assert level.scale == 1.0 and not level.whole_image and not result.probabilities
    logits = fc2conv.run.Runner.from_model(cam).logits(image() / 255)
    assert np.array_equal(level.scores, logits)
    # its mean is the classifier's logits on the whole image, and they are of order 1
    with torch.no_grad():
        pixels = torch.from_numpy(image().transpose(2, 0, 1)[None] / 255).float()
        expected = original(pixels)[0].numpy()
    scale = float(np.abs(expected).max())
    assert scale > 0.1
    assert np.abs(logits.mean((1, 2)) - expected).max() < 1e-5 * scale
    # a group's map is the sum of its members' maps, the map as it is (not probabilities)
    group = fc2conv.heatmap(cam, image(), classes=["a,c"])
    assert np.allclose(group.levels[0].scores[0], logits[0] + logits[2], rtol=1e-6)
    # probabilities still on request, and explicit scales as given
    asked = fc2conv.heatmap(cam, image(), probabilities=True, scales=(0.8, 1.5))
    assert asked.scales == (0.8, 1.5) and np.allclose(asked.levels[0].scores.sum(0), 1, atol=1e-5)


def test_a_window_model_keeps_its_pyramid_of_probabilities(models) -> None:
    result = fc2conv.heatmap(models["window"], image())
    assert result.probabilities and len(result.levels) > 2 and result.levels[-1].whole_image
    assert result.levels[0].scale == 2.0


def test_a_large_image_runs_at_the_largest_size_allowed(models) -> None:
    result = fc2conv.heatmap(models["cam"], image(300, 500), max_size=200)
    (level,) = result.levels
    assert level.scale == 0.4 and level.boxes[-1, -1, 2] <= 500


def test_onnx_cam_heatmap_matches_pytorch(models, cam_onnx) -> None:
    from_file = fc2conv.heatmap(cam_onnx, image())
    from_torch = fc2conv.heatmap(models["cam"], image())
    reference = from_torch.levels[0].scores
    error = np.abs(from_file.levels[0].scores - reference).max() / np.abs(reference).max()
    assert from_file.scales == (1.0,) and not from_file.probabilities and error < 1e-5


def test_a_cam_detects_with_the_window_models_windows(models) -> None:
    """Its windows are the means of its map over the cells each covers: the window model's own
    cells (the head is affine), so the same proposals with the same scores; only the boxes
    differ (each the class-activation region it lies in), and boxes that then coincide merge."""
    picture = image(90, 120)
    window_count = cam_count = 0
    for name in CLASSES:  # a class at a time, so that no class suppresses another
        settings = {"score_threshold": 0.1, "classes": [name]}
        by_window = fc2conv.detect(models["window"], picture, **settings)
        by_cam = fc2conv.detect(models["cam"], picture, **settings)
        assert by_cam.settings["boxes"] == "class-activation map"
        assert by_cam.settings["scales"] == by_window.settings["scales"]
        assert len(by_cam) <= len(by_window)
        found = {round(float(score), 4) for score in by_window.scores}
        assert {round(float(score), 4) for score in by_cam.scores} <= found
        window_count, cam_count = window_count + len(by_window), cam_count + len(by_cam)
    assert window_count >= 3 and cam_count >= 3


def test_the_windows_of_a_cam_are_the_window_models_cells(models) -> None:
    from fc2conv.run.detection import _windows
    from fc2conv.run.pyramid import pyramid

    pixels = image(61, 83) / 255
    runners = {mode: fc2conv.run.Runner.from_model(model) for mode, model in models.items()}
    expected = list(pyramid(runners["window"], pixels))
    found = list(
        _windows(
            runners["cam"],
            pyramid(runners["cam"], pixels, probabilities=False, activation_once=False),
            pixels.shape[:2],
        )
    )
    assert [level.scale for level in found] == [level.scale for level in expected]
    for mine, theirs in zip(found, expected, strict=True):
        assert mine.whole_image == theirs.whole_image
        assert np.abs(mine.boxes - theirs.boxes).max() < 1e-4  # pixels, float32 rounding
        assert np.abs(mine.scores - theirs.scores).max() < 1e-5


def test_a_detections_box_becomes_the_activation_region_it_lies_in() -> None:
    from fc2conv.run.detection import _region

    scaled = np.zeros((40, 60), np.float32)
    scaled[5:15, 10:30] = 0.8  # one region
    scaled[8, 12] = 1.0
    scaled[25:35, 40:55] = 0.5  # another, apart from it
    scaled[20:25, 0:5] = 0.2  # below the threshold
    assert _region(scaled, np.array([0, 0, 20, 20])) == (5, 14, 10, 29)
    assert _region(scaled, np.array([35, 20, 60, 40])) == (25, 34, 40, 54)
    assert _region(scaled, np.array([0, 18, 8, 30])) is None  # nothing above it in the box
    scaled[15:25, 29] = 0.4  # a bridge joins the two: one region
    scaled[24, 29:41] = 0.4
    assert _region(scaled, np.array([0, 0, 20, 20])) == (5, 34, 10, 54)


def test_cli_detect_with_a_cam_export(cam_onnx, tmp_path: Path) -> None:
    picture = tmp_path / "one.png"
    Image.fromarray(image()).save(picture)
    out, data = tmp_path / "boxes.png", tmp_path / "boxes.json"
    runner = CliRunner()
    command = ["detect", str(cam_onnx), str(picture), "--out", str(out), "--json", str(data)]
    result = runner.invoke(main, [*command, "--score-threshold", "0.3"])
    assert result.exit_code == 0, result.output
    assert json.loads(data.read_text())["boxes"] == "class-activation map" and out.is_file()
    jsonl = tmp_path / "boxes.jsonl"
    result = runner.invoke(
        main, ["detect", str(cam_onnx), str(picture), str(picture), "--jsonl", str(jsonl)]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [record["boxes"] for record in records] == ["class-activation map"] * 2
    # a heatmap of the same file: one pass at the image's size
    result = runner.invoke(
        main, ["heatmap", str(cam_onnx), str(picture), "--out", str(out), "--force"]
    )
    assert result.exit_code == 0, result.output
    assert "scales 1" in result.output
    result = runner.invoke(main, ["inspect", str(cam_onnx)])
    assert result.exit_code == 0 and "mode: cam, a class-activation map" in result.output


def test_a_cam_detection_needs_a_scale_with_a_window(models) -> None:
    with pytest.raises(fc2conv.InputSizeError, match=r"add a scale of at least 0\.46"):
        fc2conv.detect(models["cam"], image(70, 90), scales=(0.3, 0.4))
    found = fc2conv.detect(models["cam"], image(70, 90), scales=(0.3, 1.0), score_threshold=0)
    assert found.settings["scales"] == [1.0] and len(found) >= 1  # the level with windows


def test_a_cam_detection_runs_each_scale_once(models) -> None:
    """The map its boxes come from is the pyramid's level at scale 1 where there is one: no
    second pass (one more pass only where no level is at that scale)."""
    runner = fc2conv.run.Runner.from_model(models["cam"])
    sizes: list[tuple[int, ...]] = []
    compute = runner.logits

    def counted(pixels: np.ndarray) -> np.ndarray:
        sizes.append(pixels.shape[:2])
        return compute(pixels)

    runner.logits = counted  # type: ignore[method-assign]
    found = fc2conv.detect(runner, image(90, 120), score_threshold=0.1)
    assert 1.0 in found.settings["scales"] and len(found) >= 1
    assert len(sizes) == len(set(sizes)) == len(found.settings["scales"]) + 1  # + whole view
    sizes.clear()
    found = fc2conv.detect(runner, image(90, 120), score_threshold=0.1, scales=(1.5, 0.8))
    assert sizes == [(135, 180), (72, 96), (90, 120)]  # then the map at the image's size
