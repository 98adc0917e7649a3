"""The region of the image that one cell of a converted model really reads.

A cell stands for one canonical-size window, and at the canonical size the single cell is
exactly the classifier. Inside a larger image a cell can read beyond its window: where the
classifier on the canonical input sees zero padding, or a ceil_mode pool's partial window at the
border, the cell sees the real pixels next to its window. Only a trunk without padding gives
cells equal to the classifier on their crop, and without ceil_mode pools whose last window is
partial at the canonical size, unless :mod:`.borders` makes those exact.

The region is measured, not derived: the gradient of one interior cell with respect to the
image is non-zero where the cell reads. So that it is non-zero wherever a path exists, whatever
the model's own weights (zero-initialised residual branches, dead activations), the measurement
runs with positive random weights on a positive image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import fx, nn

from ..geometry import Pair
from ..partial_windows import last_window
from .tracing import output_leaves

__all__ = ["last_window", "reads_beyond_window", "receptive_field"]


def reads_beyond_window(gm: fx.GraphModule, shapes: Mapping[fx.Node, tuple[int, ...]]) -> list[str]:
    """The trunk layers through which a cell reads beyond its window (by dotted name): those
    that pad their input, and the ceil_mode pools whose last window at the canonical size
    (``shapes``: the graph's) is partial; a pool whose windows all fit reads only its window. A
    ceil_mode pool the graph does not call (inside a module the trace kept whole) is named."""
    partial: dict[str, bool] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            module = gm.get_submodule(str(node.target))
            if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)) and module.ceil_mode:
                partial[str(node.target)] = partial.get(str(node.target), False) or (
                    _partial(module, shapes.get(node.args[0]), shapes.get(node))
                )
    found = []
    for name, module in gm.named_modules():
        padding: Any = getattr(module, "padding", 0)
        pads = padding not in (0, (0, 0), "valid") if isinstance(module, nn.Conv2d) else False
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            ceil = bool(module.ceil_mode) and partial.get(name, True)
            pads = module.padding not in (0, (0, 0)) or ceil
        if pads:
            found.append(name)
    return found


def _partial(pool: nn.Module, source: Any, output: Any) -> bool:
    """Whether the last window of ``pool`` is partial between maps of shapes ``source`` and
    ``output`` (shapes unknown: it may be)."""
    if not all(isinstance(shape, tuple) and len(shape) == 4 for shape in (source, output)):
        return True
    pair = nn.modules.utils._pair
    kernel, stride = pair(pool.kernel_size), pair(pool.stride or pool.kernel_size)
    last = last_window(source[2:], output[2:], stride)
    return any(m < k for m, k in zip(last, kernel, strict=True))


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
