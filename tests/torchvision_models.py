"""torchvision's classifiers as the torchvision tests and the zoo sweep check them: which are
claimed, how each is built, and one converted and verified (used by
``tests/test_torchvision_models.py`` and ``benchmarks/zoo.py``)."""

from __future__ import annotations

import time

import torch
import torchvision
from helpers import RTOL, assert_order_one, reinit

import fc2conv

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
