"""A real face detector: MTCNN's RNet (24x24) and ONet (48x48) in facenet-pytorch's own code with
its shipped weights. Both have ceil_mode pools whose last window is partial at their input size
and flatten a permuted (N×W×H×C) map; converted from PyTorch and from their ONNX export, every
cell on a real photo is the stage on its window, and no cell's window leaves the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exporters import export
from real_models import mtcnn_stages
from windows import assert_cells_are_windows

import fc2conv
from fc2conv.runtime import open_session

EVERY_CELL = "every cell is the classifier on its window"


@pytest.fixture(scope="module")
def mtcnn(tmp_path_factory):
    return mtcnn_stages(tmp_path_factory.mktemp("facenet"))


def photo(height: int, width: int) -> np.ndarray:
    """The astronaut photo (a face) resized to ``height`` x ``width``, as MTCNN normalises it:
    1×3×H×W, (pixel - 127.5) / 128."""
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.astronaut()[:256, 96:352]).resize((width, height))
    pixels = np.asarray(image, np.float32).transpose(2, 0, 1)[None]
    return (pixels - 127.5) * 0.0078125


@pytest.mark.parametrize(
    ("stage", "size", "image"), [("RNet", 24, (61, 53)), ("ONet", 48, (90, 75))]
)
def test_every_cell_of_a_real_face_stage_is_its_window(mtcnn, stage, size, image, tmp_path):
    model = getattr(mtcnn, stage)().eval()
    pixels = photo(*image)
    converted = fc2conv.convert(model, (size, size))
    assert any(EVERY_CELL in note for note in converted.plan.notes), converted.plan.notes
    geometry = converted.geometry
    assert geometry.min_size == geometry.window == (size, size)
    with torch.no_grad():
        outputs = converted(torch.from_numpy(pixels))  # boxes, (ONet: landmarks,) faces
    faces = outputs[-1]
    assert faces.shape[2:] == converted.output_size(*image)
    assert float(faces[0, 1].max()) > 0.5  # the photo holds a face the stage finds
    for index, maps in enumerate(outputs):

        def original(crop, index=index):
            return model(torch.from_numpy(np.ascontiguousarray(crop)))[index]

        assert_cells_are_windows(original, pixels, maps.numpy(), (size, size), geometry.stride)
    # its ONNX export, converted from the file: the same cells
    source, target = tmp_path / f"{stage}.onnx", tmp_path / f"{stage}_fcn.onnx"
    export(model, (size, size), source, "torchscript")
    result = fc2conv.convert_onnx(source, target, output=len(outputs) - 1)
    assert any(EVERY_CELL in note for note in result.notes), result.notes
    assert result.geometry.min_size == (size, size)
    session = open_session(str(target))
    maps = session.run(None, {"images": pixels})[0]
    assert np.abs(maps - faces.numpy()).max() < 1e-5
