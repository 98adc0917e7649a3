"""Every model in `fc2conv list` exports and passes the ONNX checks (slow: ``pytest -m onnx_zoo``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import reinit

import fc2conv
from fc2conv.models import load_model, supported_models


@pytest.mark.onnx_zoo
@pytest.mark.parametrize("name", supported_models())
def test_export_passes_the_checks(name: str, tmp_path: Path) -> None:
    loaded = load_model(name, "DEFAULT" if name == "shapes" else "none")
    model = loaded.model if name == "shapes" else reinit(loaded.model)
    converted = fc2conv.convert(model, loaded.input_size, name=name, inplace=True)
    report = fc2conv.export_onnx(converted, tmp_path / f"{name}.onnx")
    assert len(report.checks) == 3
    assert all(check.relative_error <= 1e-4 for check in report.checks)
