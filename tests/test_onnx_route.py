"""The second route: a classifier whose own forward torch.fx cannot trace (an ``assert`` on the
input's size) is exported with torch.onnx at its canonical size and converted with the ONNX
rules, from the command line, ``export_model``, ``inspect_model`` and ``open_model``; every cell
of the result is the classifier on its window. A forward that branches on the image's values
is refused in one line, and ``fc2conv.convert`` says which door takes such a model."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from windows import assert_cells_are_windows

import fc2conv
from fc2conv.export.onnx_file import read_metadata
from fc2conv.runtime import open_session

MODELS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc1 = nn.Linear(16 * 6 * 6, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        assert x.shape[-2:] == (32, 32), "Net classifies 32x32 images"
        x = self.features(x).view(x.size(0), -1)
        return self.fc2(torch.relu(self.fc1(x)))


class ByValue(Net):
    def forward(self, x):
        x = self.features(x)
        if x.mean() > 0:  # the image's values choose the branch: no fixed function
            x = -x
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))
"""

NAME = "root_models:Net"
SIZE = (32, 32)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with the user's module in it, as the current folder."""
    (tmp_path / "root_models.py").write_text(textwrap.dedent(MODELS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("root_models", None)


def original():
    from root_models import Net

    return Net().eval()


def test_convert_refuses_it_and_names_the_route_that_takes_it(project):
    with pytest.raises(fc2conv.TraceError) as info:
        fc2conv.convert(original(), SIZE)
    assert "torch.fx cannot trace the forward" in str(info.value)
    assert "command line export such a model through torch.onnx" in str(info.value)


def test_export_takes_the_second_route_and_every_cell_is_the_classifier(project):
    classes = ["a", "b", "c", "d"]
    report = fc2conv.export_model(
        NAME, project / "net.onnx", input_size=SIZE, classes=classes, mean=[0.5] * 3, std=[0.2] * 3
    )
    assert report.notes[0].startswith("route: torch.onnx + ONNX rules (torch.fx cannot trace")
    assert report.verified is not None and "torch.onnx export of the original at 32x32" in (
        report.verified
    )
    canonical, *others = report.checks
    assert (canonical.height, canonical.width) == SIZE and len(others) == 2
    assert canonical.relative_error is not None and canonical.relative_error < 1e-5
    meta = read_metadata(project / "net.onnx")
    assert meta["model"] == NAME and meta["classes"] == classes and meta["mean"] == [0.5] * 3
    assert meta["route"] == "route: torch.onnx + ONNX rules"
    assert sorted(p.name for p in project.iterdir()) == ["net.onnx", "root_models.py"]

    session = open_session(project / "net.onnx")
    image = np.random.default_rng(1).standard_normal((2, 3, 45, 61)).astype(np.float32)
    maps = session.run(None, {session.get_inputs()[0].name: image})[0]
    stride = meta["geometry"].stride
    assert maps.shape == (2, 4, (45 - 32) // stride[0] + 1, (61 - 32) // stride[1] + 1)
    model = original()
    assert_cells_are_windows(
        lambda crops: model(torch.as_tensor(crops)).detach().numpy(), image, maps, SIZE, stride
    )


def test_inspect_and_a_run_by_name_take_the_same_route(project):
    text = fc2conv.inspect_model(NAME, input_size=SIZE)
    lines = text.splitlines()
    assert lines[0] == f"{NAME}: 3 rewrites"
    assert "route: torch.onnx + ONNX rules" in text
    assert "geometry: stride 4x4, window 32x32" in text
    runner = fc2conv.open_model(NAME, input_size=SIZE)
    image = np.random.default_rng(2).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    level = fc2conv.heatmap(runner, image, scales=[1.0]).levels[0]
    model = original()
    crop = torch.from_numpy(np.ascontiguousarray(image[None, :32, :32].transpose(0, 3, 1, 2)) / 255)
    with torch.no_grad():
        want = torch.softmax(model(crop.float()), 1)[0].numpy()
    np.testing.assert_allclose(level.scores[:, 0, 0], want, rtol=1e-4, atol=1e-6)


def test_a_forward_that_branches_on_values_is_one_line_and_no_file(project):
    command = [sys.executable, "-m", "fc2conv", "root_models:ByValue", "--input-size", "32x32"]
    done = subprocess.run([*command, "--out", "v.onnx"], capture_output=True, text=True)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: root_models:ByValue: torch.fx cannot trace the forward")
    assert "and torch.onnx cannot export it" in last
    assert last.endswith("fc2conv needs a forward that does not branch on the image's values")
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in project.iterdir()) == ["root_models.py"]


def test_a_finer_stride_is_refused_on_this_route(project):
    with pytest.raises(fc2conv.ModelLoadError, match="leave out --mode and --stride"):
        fc2conv.inspect_model(NAME, input_size=SIZE, stride=2)
