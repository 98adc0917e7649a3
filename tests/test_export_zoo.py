"""Every model in `fc2conv list` exports and passes the ONNX checks (slow: ``pytest -m onnx_zoo``).

``python benchmarks/zoo.py --export`` runs the same exports and writes their figures into
docs/zoo.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import calibrate, onnxruntime_agrees

import fc2conv
from fc2conv.sources import load_model, supported_models


@pytest.mark.onnx_zoo
@pytest.mark.parametrize("name", supported_models())
def test_export_passes_the_checks(name: str, tmp_path: Path) -> None:
    loaded = load_model(name, "DEFAULT" if name == "shapes" else "none")
    model = loaded.model if name == "shapes" else calibrate(loaded.model, loaded.input_size)
    converted = fc2conv.convert(model, loaded.input_size, name=name, inplace=True)
    report = fc2conv.export_onnx(converted, tmp_path / f"{name}.onnx")
    assert len(report.checks) == 3
    # a size the export did not check: one stride more than the canonical size, both ways
    height, width = converted.geometry.canonical_size
    size = (height + converted.geometry.stride[0], width + converted.geometry.stride[1])
    onnxruntime_agrees(converted, report.path, size)
