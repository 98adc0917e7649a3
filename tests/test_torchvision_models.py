"""torchvision's classifiers: one per family by default; every one with ``pytest -m zoo``."""

from __future__ import annotations

import time

import pytest
import torch
import torchvision
from helpers import RTOL, assert_order_one, reinit

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
TRANSFORMERS = {"vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14", "maxvit_t"}
ALL_MODELS = torchvision.models.list_models(module=torchvision.models)
CNN_MODELS = [n for n in ALL_MODELS if n not in TRANSFORMERS and not n.startswith("swin")]


def canonical_size(name: str) -> tuple[int, int]:
    return (299, 299) if name == "inception_v3" else (224, 224)


def build(name: str) -> torch.nn.Module:
    kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
    return reinit(torchvision.models.get_model(name, weights=None, **kwargs))


def check_model(name: str) -> dict[str, object]:
    model = build(name)
    size = canonical_size(name)
    start = time.perf_counter()
    converted = fc2conv.convert(model, size, name=name, inplace=True)
    seconds = time.perf_counter() - start
    report = fc2conv.verify(model, converted, rtol=RTOL)
    assert_order_one(report)
    height, width = size[0] + 37, size[1] + 101  # not multiples of the stride
    with torch.no_grad():
        maps = converted(torch.randn(1, 3, height, width))
    assert maps.shape[-2:] == converted.output_size(height, width)
    assert maps.shape[1] == 1000
    return {
        "model": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "relative error": report.relative_error,
        "geometry": converted.geometry,
        "seconds": seconds,
        "linears": sum(1 for s in converted.plan.steps if s.rule.name == "linear"),
    }


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
