"""Shared test helpers: weights of order one, and the relative-error check every test uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from torch import nn
from windows import RTOL  # fp32, relative to the output's scale

import fc2conv
from fc2conv import compare


def reinit(model: nn.Module, seed: int = 0) -> nn.Module:
    """He-normal weights and non-trivial batch-norm statistics, so logits are of order one.

    Stock initialisations can give logits near 1e-20, against which any tolerance passes.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(
                    torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5
                )
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                shape = module.running_mean.shape
                module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(shape, generator=generator) * 0.1)
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)) and module.weight is not None:
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                if module.bias is not None:  # a norm without bias (timm's metaformer)
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model.eval()


def assert_order_one(report: fc2conv.VerifyReport) -> None:
    """The comparison means something only when the outputs are not tiny."""
    assert report.output_scale > 0.1, f"outputs too small to compare: {report}"
    assert not report.degenerate, f"outputs do not depend on the input: {report}"


def convert_and_verify(
    model: nn.Module, input_size: tuple[int, int] = (224, 224), **kwargs
) -> tuple[fc2conv.FullyConvolutionalModel, fc2conv.VerifyReport]:
    """Convert ``model``; fc2conv's own check passes on outputs of order one, and so does this
    file's (:func:`assert_equals_original`)."""
    converted = fc2conv.convert(model, input_size, **kwargs)
    report = fc2conv.verify(model, converted, rtol=RTOL)
    assert_order_one(report)
    assert_equals_original(model, converted)
    return converted, report


def _leaves(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    values = output.values() if isinstance(output, dict) else output
    return [leaf for value in values for leaf in _leaves(value)]


def assert_equals_original(
    model: nn.Module, converted: fc2conv.FullyConvolutionalModel, seed: int = 3
) -> None:
    """Independently of ``fc2conv.verify``: on two seeded images of the canonical size, every
    output of ``converted`` (its first cell; in mode "cam", the mean of its map) equals
    ``model``'s (which conversion leaves untouched), outputs of order one that depend on the
    image."""
    size = converted.geometry.canonical_size
    shape = (2, converted.input_channels) + (() if converted.vector_input else tuple(size))
    inputs = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    images = inputs[:, :, None, None] if converted.vector_input else inputs
    model.eval()
    with torch.no_grad():
        expected, actual = _leaves(model(inputs)), _leaves(converted(images))
    assert len(expected) == len(actual)
    dependence = max(relative_error(want[0], want[1]) for want in expected)
    assert dependence > 1e-3, "the outputs do not depend on the image"
    for want, got in zip(expected, actual, strict=True):
        if want.dim() == 2 and got.dim() == 4:  # a map of cells for a vector per image
            if converted.mode == "cam":
                got = got.mean((2, 3))
            else:  # one cell, or the first of a refined model's cells
                assert got.shape[2:] == converted.output_size(*size), got.shape
                got = got[:, :, 0, 0]
        assert got.shape == want.shape, (got.shape, want.shape)
        assert relative_error(want, got) < RTOL


def refusals(model: nn.Module, input_size: tuple[int, int], **kwargs) -> list[tuple[str, str, str]]:
    """Converting ``model`` is refused; returns (rule, layer, reason) of every decline in its
    plan, which the error lists (as layer and reason) in the same order."""
    with pytest.raises(fc2conv.UnsupportedModelError) as info:
        fc2conv.convert(model, input_size, **kwargs)
    found = [
        (d.rule, d.layer, d.reason) for d in fc2conv.plan(model, input_size, **kwargs).declines
    ]
    assert info.value.reasons == [(layer, reason) for _, layer, reason in found]
    return found


def steps_of(plan: fc2conv.Plan, rule: str) -> list[tuple[str, str]]:
    """(layer, action) of every step that ``rule`` planned."""
    return [(step.layer, step.action) for step in plan.steps if step.rule.name == rule]


def relative_error(expected: torch.Tensor, actual: torch.Tensor) -> float:
    """fc2conv's relative error, after checking that the outputs are not too small to compare."""
    scale = expected.abs().max().item()
    assert scale > 0.1, f"outputs too small to compare (scale {scale:.2e})"
    return compare.relative_error(expected.detach(), actual.detach())


def hub_checkpoint(home: Path, name: str, state: dict[str, torch.Tensor]) -> None:
    """Put ``state`` where torch hub caches ``name``'s DEFAULT weights (no network needed)."""
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(state, folder / Path(url).name)


def onnxruntime_agrees(
    converted: fc2conv.FullyConvolutionalModel, path: Path, size: tuple[int, int]
) -> float:
    """Run an exported file in onnxruntime at ``size`` (batch 2) and compare it with PyTorch:
    the relative error must be within 1e-4, or ten times PyTorch's own float32 noise (the same
    images one at a time against the batch, and without oneDNN) where that is larger, as the
    export's own check allows. Returns the error."""
    import warnings

    import onnxruntime as ort

    images = torch.randn(
        2, converted.input_channels, *size, generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batched = converted(images)
        single = torch.cat([converted(images[i : i + 1]) for i in range(2)])
        with torch.backends.mkldnn.flags(enabled=False):
            native = converted(images)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (maps,) = session.run(None, {"images": images.numpy()})
    assert maps.shape == (2, batched.shape[1], *converted.output_size(*size))
    error = relative_error(single, torch.from_numpy(maps))
    noise = max(relative_error(single, batched), relative_error(batched, native))
    assert error <= max(1e-4, 10 * noise), (error, noise)
    return error


def calibrate(model: nn.Module, size: tuple[int, int], seed: int = 0) -> nn.Module:
    """He-normal weights (``reinit``), then batch-norm statistics measured on random images,
    as training leaves them: activations stay normalised through the whole network, so even
    deep gated networks (EfficientNet, RegNet-Y) give outputs of order one that float32
    computes stably. With ``reinit`` alone their logits can reach 1e9 and two float32
    evaluations of the same image differ by 100%."""
    reinit(model, seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the calibration batches
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, *size, generator=generator))
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()
