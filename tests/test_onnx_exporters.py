"""torchvision's classifiers exported by both PyTorch exporters convert through the ONNX path to
the same maps as the PyTorch path: a plain ResNet, a squeeze-and-excitation MobileNetV3 and a
ConvNeXt (LayerNorm head; the dynamo exporter's as_strided) by default, every one with
``pytest -m onnx_exporters``."""

from __future__ import annotations

import pytest
from exporters import CNN_MODELS, EXPORTERS, sweep_one

DEFAULT = ("resnet18", "mobilenet_v3_small", "convnext_tiny")


def check(name: str, exporter: str, folder) -> None:
    outcome = sweep_one(name, exporter, folder)
    assert outcome.status == "converted", outcome.reason
    assert not outcome.reason, outcome.reason
    assert outcome.exact, outcome


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", DEFAULT)
def test_both_exporters_convert_to_the_pytorch_paths_map(name, exporter, tmp_path):
    check(name, exporter, tmp_path)


@pytest.mark.onnx_exporters
@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", [n for n in CNN_MODELS if n not in DEFAULT])
def test_every_torchvision_classifier_both_exporters(name, exporter, tmp_path):
    check(name, exporter, tmp_path)
