"""torchvision's classifiers: one per family by default; every one with ``pytest -m zoo``."""

from __future__ import annotations

import pytest
import torchvision
from torchvision_models import ALL_MODELS, CNN_MODELS, build, check_model

import fc2conv

CNN_FAMILY_REPRESENTATIVES = [
    "alexnet",
    "vgg11_bn",
    "resnet18",
    "resnext50_32x4d",
    "densenet121",
    "googlenet",
    "inception_v3",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mnasnet0_5",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "efficientnet_b0",
    "regnet_x_400mf",
    "regnet_y_400mf",
    "convnext_tiny",
]


@pytest.mark.parametrize("name", CNN_FAMILY_REPRESENTATIVES)
def test_family_representative_converts_exactly(name: str) -> None:
    check_model(name)


def test_sixty_eight_cnn_classifiers_are_claimed() -> None:
    assert len(CNN_MODELS) == 68
    assert set(CNN_FAMILY_REPRESENTATIVES) <= set(CNN_MODELS)


@pytest.mark.parametrize("name", ["vit_b_32", "maxvit_t"])
def test_transformers_are_refused_with_a_reason(name: str) -> None:
    with pytest.raises(fc2conv.UnsupportedModelError) as info:
        fc2conv.convert(torchvision.models.get_model(name), name=name, inplace=True)
    message = str(info.value)
    assert message.startswith(f"{name}: ")
    if name.startswith("vit"):
        assert "heads.head: its input is one token of a sequence" in message
    else:
        assert "only accept certain sizes" in message


def test_squeezenet_keeps_its_convolutional_classifier() -> None:
    model = build("squeezenet1_0")
    converted = fc2conv.convert(model, name="squeezenet1_0")
    text = str(converted.plan)
    assert "no Linear on the classifier path" in text
    assert "global avg pool over 13x13 (1000 channels) → AvgPool2d(kernel 13x13, stride 1)" in text


@pytest.mark.zoo
@pytest.mark.parametrize("name", CNN_MODELS + sorted(n for n in ALL_MODELS if n.startswith("swin")))
def test_zoo(name: str) -> None:
    """Every classifier converts exactly (``benchmarks/zoo.py`` writes the table in docs/zoo.md)."""
    check_model(name)
