"""Heatmaps of a class-activation map (a model converted with mode="cam"): one pass on the image
as it is, the map as the model gives it (its mean is the logits), and no detections."""

from __future__ import annotations

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


def test_detect_refuses_a_cam(models, cam_onnx, tmp_path: Path) -> None:
    with pytest.raises(fc2conv.Fc2ConvError, match="is a class-activation map"):
        fc2conv.detect(models["cam"], image())
    pictures = [tmp_path / "one.png", tmp_path / "two.png"]
    for picture in pictures:
        Image.fromarray(image()).save(picture)
    runner = CliRunner()
    jsonl = tmp_path / "boxes.jsonl"
    result = runner.invoke(
        main, ["detect", str(cam_onnx), *map(str, pictures), "--jsonl", str(jsonl)]
    )
    assert result.exit_code == 1, result.output
    assert "leave out --mode cam" in result.output and "Traceback" not in result.output
    assert not jsonl.exists()
    out = tmp_path / "boxes.png"
    result = runner.invoke(main, ["detect", str(cam_onnx), str(pictures[0]), "--out", str(out)])
    assert result.exit_code == 1 and not out.exists()
    # a heatmap of the same file works, one pass at the image's size
    result = runner.invoke(main, ["heatmap", str(cam_onnx), str(pictures[0]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "scales 1" in result.output and out.is_file()
