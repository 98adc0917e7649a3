"""The region of the image that one cell of a converted model really reads.

A cell stands for one canonical-size window, and at the canonical size the single cell is
exactly the classifier. Inside a larger image a cell can read beyond its window: where the
classifier on the canonical input sees zero padding, or a ceil_mode pool's partial window at the
border, the cell sees the real pixels next to its window. Only a trunk without padding and
without ceil_mode pooling gives cells equal to the classifier on their crop.

The region is measured, not derived: the gradient of one interior cell with respect to the
image is non-zero where the cell reads. So that it is non-zero wherever a path exists, whatever
the model's own weights (zero-initialised residual branches, dead activations), the measurement
runs with positive random weights on a positive image.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn

from ..geometry import Pair
from .tracing import output_leaves

__all__ = ["reads_beyond_window", "receptive_field"]


def reads_beyond_window(gm: fx.GraphModule) -> list[str]:
    """The trunk layers that pad their input or pool with ceil_mode (by dotted name)."""
    found = []
    for name, module in gm.named_modules():
        padding: Any = getattr(module, "padding", 0)
        pads = padding not in (0, (0, 0), "valid") if isinstance(module, nn.Conv2d) else False
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            pads = module.padding not in (0, (0, 0)) or bool(module.ceil_mode)
        if pads:
            found.append(name)
    return found


def receptive_field(converted: Any, index: int = 0) -> tuple[Pair, Pair]:
    """(offset, size) of the region an interior cell reads, relative to the top-left corner of
    its window, for output ``index`` of ``converted`` (a FullyConvolutionalModel). The image is
    made larger until that region no longer touches its border."""
    geometry = converted.geometry
    margin = [
        geometry.window[0] // 2 + geometry.stride[0],
        geometry.window[1] // 2 + geometry.stride[1],
    ]
    for _ in range(4):
        measured = _measure(converted, index, margin)
        if measured is not None:
            return measured
        margin = [2 * m for m in margin]
    raise ValueError(f"{converted.name}: a cell reads more than the whole image it was measured on")


def _measure(converted: Any, index: int, margin: list[int]) -> tuple[Pair, Pair] | None:
    geometry = converted.geometry
    size = geometry.usable_size(
        geometry.min_size[0] + 2 * margin[0], geometry.min_size[1] + 2 * margin[1]
    )
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(1, converted.input_channels, *size, generator=generator) + 0.1
    images.requires_grad_(True)
    module = converted.graph_module
    positive = {
        key: torch.rand(value.shape, generator=generator, dtype=value.dtype) + 0.1
        if value.is_floating_point()
        else value
        for key, value in [*module.named_parameters(), *module.named_buffers()]
    }
    maps = output_leaves(torch.func.functional_call(module, positive, (images,)))[index]
    row, col = maps.shape[-2] // 2, maps.shape[-1] // 2
    maps[:, :, row, col].abs().sum().backward()
    assert images.grad is not None
    touched = images.grad.abs().sum((0, 1)) > 0
    rows = torch.nonzero(touched.any(1)).flatten()
    cols = torch.nonzero(touched.any(0)).flatten()
    if rows.min() == 0 or cols.min() == 0 or rows.max() == size[0] - 1 or cols.max() == size[1] - 1:
        return None  # the region may go on beyond the image
    top = geometry.offset[0] + row * geometry.stride[0]
    left = geometry.offset[1] + col * geometry.stride[1]
    offset = (int(rows.min()) - top, int(cols.min()) - left)
    extent = (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1)
    return offset, extent
