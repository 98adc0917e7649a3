"""Fixtures shared by the test files."""

from __future__ import annotations

from pathlib import Path

import pytest

import fc2conv


@pytest.fixture(scope="session")
def shapes_onnx(tmp_path_factory) -> Path:
    """The bundled classifier, exported (a file may define its own fixture of this name)."""
    path = tmp_path_factory.mktemp("model") / "shapes_fcn.onnx"
    fc2conv.export_model("shapes", path, check=False)
    return path
