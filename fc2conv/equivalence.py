"""Proof of equivalence: at the canonical size the converted model reproduces the original logits.

Errors are relative to the output's scale (see :mod:`fc2conv.compare`): random-init classifiers
can produce logits near 1e-20, against which any absolute tolerance passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .compare import relative_error
from .conversion import FullyConvolutionalModel
from .conversion.tracing import output_leaves
from .errors import EquivalenceError

__all__ = ["VerifyReport", "verify"]


@dataclass(frozen=True)
class VerifyReport:
    name: str
    input_shape: tuple[int, ...]
    max_abs_error: float
    relative_error: float
    output_scale: float
    rtol: float
    #: how much the original's outputs differ between the random inputs, relative to their scale
    input_dependence: float = 1.0

    @property
    def passed(self) -> bool:
        return self.relative_error <= self.rtol

    @property
    def degenerate(self) -> bool:
        """True when the outputs hardly depend on the input, so agreement proves little."""
        return self.input_dependence < 1e-6

    def __str__(self) -> str:
        size = "x".join(map(str, self.input_shape[2:] or self.input_shape[1:]))
        text = (
            f"{self.name} at {size} (batch {self.input_shape[0]}): relative error "
            f"{self.relative_error:.2e} (max abs {self.max_abs_error:.2e}, output scale "
            f"{self.output_scale:.2e}, rtol {self.rtol:.0e})"
        )
        if self.degenerate:
            text += (
                "; warning: the outputs hardly depend on the input (untrained or degenerate "
                "weights?), so this agreement proves little"
            )
        return text


def _leaves(output: Any) -> list[torch.Tensor]:
    return [leaf for leaf in output_leaves(output) if isinstance(leaf, torch.Tensor)]


def _as_logits(
    converted: torch.Tensor, original: torch.Tensor, mode: str, canonical: bool
) -> torch.Tensor:
    """The converted output reduced to the original's shape (one cell, or the CAM's mean). At
    the canonical size (``canonical``) the first cell is the classifier's window; with a finer
    stride than the model's own, a padded trunk gives further cells there, whose windows
    cross the image's border."""
    if converted.shape == original.shape:
        return converted
    if converted.dim() == original.dim() + 2:
        if mode == "cam":
            return converted.mean(dim=(-2, -1))
        if converted.shape[-2:] != (1, 1) and not canonical:
            raise ValueError(
                f"verify compares one cell with the logits, but the map is "
                f"{converted.shape[-2]}x{converted.shape[-1]}; use the canonical input size"
            )
        return converted[..., 0, 0]
    if converted.dim() == original.dim() and mode == "cam":
        return converted.mean(dim=(-2, -1), keepdim=True)
    raise ValueError(f"output shapes {tuple(converted.shape)} and {tuple(original.shape)} differ")


def verify(
    original: nn.Module,
    converted: FullyConvolutionalModel,
    input_size: tuple[int, int] | None = None,
    *,
    rtol: float = 1e-5,
    seed: int = 0,
    batch: int = 2,
) -> VerifyReport:
    """Compare ``converted`` with ``original`` on seeded random inputs; raise EquivalenceError if
    their relative error exceeds ``rtol``. ``input_size`` defaults to the canonical size."""
    if batch < 2:
        raise ValueError("verify uses a batch of at least 2, so batch-mixing errors show")
    size = tuple(input_size or converted.geometry.canonical_size)
    generator = torch.Generator().manual_seed(seed)
    if converted.vector_input:
        inputs = torch.randn(batch, converted.input_channels, generator=generator)
        images = inputs[:, :, None, None]
    else:
        inputs = torch.randn(batch, converted.input_channels, *size, generator=generator)
        images = inputs
    was_training = original.training
    original.eval()
    try:
        with torch.no_grad():
            expected = _leaves(original(inputs))
            actual = _leaves(converted(images))
    finally:
        original.train(was_training)
    if len(expected) != len(actual):
        raise EquivalenceError(
            f"{converted.name}: the converted model returns {len(actual)} tensors, "
            f"the original {len(expected)}"
        )
    max_abs, scale, relative, dependence = 0.0, 0.0, 0.0, 0.0
    for want, got in zip(expected, actual, strict=True):
        at_canonical = size == tuple(converted.geometry.canonical_size)
        got = _as_logits(got, want, converted.mode, at_canonical)
        max_abs = max(max_abs, float((want.double() - got.double()).abs().max()))
        scale = max(scale, float(want.abs().max()))
        relative = max(relative, relative_error(want, got))
        # how much the outputs of different images differ, on the same scale
        dependence = max(dependence, relative_error(want[:1].expand_as(want), want))
    report = VerifyReport(
        converted.name, tuple(inputs.shape), max_abs, relative, scale, rtol, dependence
    )
    if not report.passed:
        raise EquivalenceError(
            f"{converted.name}: the converted model differs from the original: {report}", report
        )
    return report
