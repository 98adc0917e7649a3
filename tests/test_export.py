"""ONNX export: dynamic sizes, checks, metadata, external data, atomic writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from helpers import reinit, relative_error
from torch import nn

import fc2conv
from fc2conv.export import torch_onnx
from fc2conv.export.onnx_file import embed_external_data


class Small(nn.Module):
    """BN trunk, VGG-like adaptive pool and flatten head: the ONNX trap case."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.classifier = nn.Sequential(
            nn.Linear(8 * 16, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Pooled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).flatten(1))


@pytest.fixture(scope="module")
def small() -> fc2conv.FullyConvolutionalModel:
    converted = fc2conv.convert(reinit(Small()), (16, 16), name="small")
    converted.metadata.update(
        {"classes": ["a", "b", "c", "d", "e"], "mean": [0.5] * 3, "std": [0.25] * 3}
    )
    return converted


@pytest.fixture(scope="module")
def exported(small: fc2conv.FullyConvolutionalModel, tmp_path_factory) -> fc2conv.ExportReport:
    path = tmp_path_factory.mktemp("export") / "small.onnx"
    return fc2conv.export_onnx(small, path)


def test_export_is_checked_at_three_sizes(exported: fc2conv.ExportReport) -> None:
    assert exported.path.is_file() and exported.external_data is None
    sizes = [(c.height, c.width) for c in exported.checks]
    assert sizes == [(16, 16), (53, 117), (24, 20)]  # stride 4: a 3x2 map last
    onnx.checker.check_model(str(exported.path), full_check=True)  # the file moved into place


def test_dynamic_batch_height_and_width(
    exported: fc2conv.ExportReport, small: fc2conv.FullyConvolutionalModel
) -> None:
    model = onnx.load(str(exported.path))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert model.opset_import[0].version >= 18
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    images = torch.randn(3, 3, 45, 29)
    (scores,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = small(images)
    assert scores.shape == (3, 5, *small.output_size(45, 29))
    assert relative_error(expected, torch.from_numpy(scores)) < 1e-4


def test_no_adaptive_pooling_is_baked_in(exported: fc2conv.ExportReport) -> None:
    ops = {node.op_type for node in onnx.load(str(exported.path)).graph.node}
    assert "AveragePool" not in ops and "GlobalAveragePool" not in ops


def test_metadata(exported: fc2conv.ExportReport, small: fc2conv.FullyConvolutionalModel) -> None:
    metadata = fc2conv.read_metadata(exported.path)
    assert metadata["geometry"] == small.geometry
    assert metadata["classes"] == ["a", "b", "c", "d", "e"]
    assert metadata["mean"] == [0.5] * 3 and metadata["std"] == [0.25] * 3
    assert metadata["version"] == fc2conv.__version__
    assert metadata["mode"] == "window" and metadata["model"] == "small"


def test_external_data_above_the_threshold(tmp_path: Path) -> None:
    converted = fc2conv.convert(reinit(Pooled()), (16, 16))
    report = fc2conv.export_onnx(converted, tmp_path / "pooled.onnx", external_data_threshold=10)
    assert report.external_data == tmp_path / "pooled.onnx.data"
    assert report.external_data.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pooled.onnx", "pooled.onnx.data"]
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, {"images": np.zeros((2, 3, 40, 40), np.float32)})
    assert scores.shape == (2, 4, *converted.output_size(40, 40))


def test_failed_check_leaves_nothing(tmp_path: Path, small, monkeypatch) -> None:
    real = torch_onnx.reference_cases

    def off_by_one_percent(*args, **kwargs):
        cases = real(*args, **kwargs)
        for case in cases:
            case.outputs = [output * 1.01 for output in case.outputs]
        return cases

    monkeypatch.setattr(torch_onnx, "reference_cases", off_by_one_percent)
    with pytest.raises(fc2conv.ExportError, match="onnxruntime differs from PyTorch"):
        fc2conv.export_onnx(small, tmp_path / "small.onnx")
    assert list(tmp_path.iterdir()) == []


def test_numerically_unstable_weights_are_refused_not_passed(
    tmp_path: Path, small, monkeypatch
) -> None:
    """When PyTorch disagrees with itself by more than 1e-3, any tolerance wide enough to pass
    would pass anything: the check says so instead of passing."""
    real = torch_onnx.reference_cases

    def chaotic(*args, **kwargs):
        cases = real(*args, **kwargs)
        for case in cases:
            case.noise = 0.5
        return cases

    monkeypatch.setattr(torch_onnx, "reference_cases", chaotic)
    with pytest.raises(fc2conv.ExportError, match="numerically unstable"):
        fc2conv.export_onnx(small, tmp_path / "small.onnx")
    assert list(tmp_path.iterdir()) == []


def test_single_file_is_the_same_message_as_onnx_writes(tmp_path: Path, small) -> None:
    staged = torch_onnx.stage(small, tmp_path, "small.onnx", cases=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.onnx"]
    twin = tmp_path / "twin"
    twin.mkdir()
    proto = onnx.load(str(staged))
    assert len(proto.graph.initializer) >= 4
    # some initializers external, the small ones inline (onnx.save moves them in ``proto``)
    onnx.save(proto, str(twin / "m.onnx"), save_as_external_data=True, size_threshold=64)
    assert sum(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer) > 0
    assert sum(t.HasField("raw_data") for t in proto.graph.initializer) > 0
    assembled = tmp_path / "assembled.onnx"
    embed_external_data(twin / "m.onnx", assembled)
    proto = onnx.load(str(staged))
    assert onnx.load(str(assembled)) == proto
    assert assembled.stat().st_size == len(proto.SerializeToString())


def test_existing_file_needs_force(tmp_path: Path) -> None:
    converted = fc2conv.convert(reinit(Pooled()), (16, 16))
    target = tmp_path / "pooled.onnx"
    target.write_bytes(b"keep me")
    with pytest.raises(fc2conv.ExportError, match="already exists; pass --force"):
        fc2conv.export_onnx(converted, target, check=False)
    assert target.read_bytes() == b"keep me"
    fc2conv.export_onnx(converted, target, check=False, force=True)
    onnx.checker.check_model(str(target))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"opset": 17}, "opset 17 is too old"),
        ({"batch": 1}, "batch of at least 2"),
    ],
)
def test_bad_export_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    converted = fc2conv.convert(reinit(Pooled()), (16, 16))
    with pytest.raises(fc2conv.ExportError, match=message):
        fc2conv.export_onnx(converted, tmp_path / "x.onnx", **kwargs)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    converted = fc2conv.convert(reinit(Pooled()), (16, 16))
    with pytest.raises(fc2conv.ExportError, match="does not exist"):
        fc2conv.export_onnx(converted, tmp_path / "nowhere" / "x.onnx")


def test_output_axes_are_named(exported: fc2conv.ExportReport) -> None:
    output = onnx.load(str(exported.path)).graph.output[0]
    dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim]
    assert dims == ["batch", 5, "rows", "cols"]


def test_checking_a_written_model_needs_no_torch(tmp_path: Path, small) -> None:
    staged = torch_onnx.stage(small, tmp_path, "small.onnx")
    code = (
        "import sys; from pathlib import Path; import fc2conv.cli; "
        "from fc2conv.export.onnx_file import check_file; "
        f"checks = check_file(Path(r'{staged}'), Path(r'{tmp_path / 'checks.npz'}'), 1e-4); "
        "assert len(checks) == 3, checks; assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


class NormalisedPool(nn.Module):
    """ConvNeXt's head: pool, LayerNorm over channels (channels last), flatten, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(6)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(self.conv(x), 1)
        normalised = self.norm(pooled.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.fc(normalised.flatten(1))


def test_onnxruntime_does_not_warn_at_other_sizes(tmp_path: Path) -> None:
    """No shape recorded in the file may pin a map axis to its canonical size: onnxruntime
    infers from them and warns on every run where the map is larger."""
    converted = fc2conv.convert(reinit(NormalisedPool()), (16, 16))
    path = tmp_path / "pooled.onnx"
    fc2conv.export_onnx(converted, path, check=False)
    code = (
        "import numpy as np, onnxruntime as ort; "
        f"s = ort.InferenceSession(r'{path}', providers=['CPUExecutionProvider']); "
        "print(s.run(None, {'images': np.zeros((2, 3, 40, 56), np.float32)})[0].shape)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str((2, 4, *converted.output_size(40, 56)))
    assert "does not match" not in done.stderr, done.stderr
