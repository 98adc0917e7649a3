"""The check every window test makes: each cell of a converted model's map equals the original
classifier on that cell's window of the image (a crop, where the trunk reads no padding).

For PyTorch models and ONNX files alike: ``original`` is any callable that runs the original
classifier on a batch of crops (a module, or a function around an onnxruntime session), and
the image and maps are tensors or NumPy arrays. No PyTorch import here, so that the ONNX rule
tests run without it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from fc2conv import compare

RTOL = 1e-5  # fp32, relative to the output's scale


def _array(value: Any) -> np.ndarray:
    """A tensor (detached) or an array, as NumPy."""
    return np.asarray(value.detach() if hasattr(value, "detach") else value)


def _no_grad(image: Any) -> contextlib.AbstractContextManager:
    if type(image).__module__.startswith("torch"):
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def assert_cells_are_windows(
    original: Callable[[Any], Any],
    image: Any,
    maps: Any,
    window: tuple[int, int],
    stride: tuple[int, int],
    cells: Iterable[tuple[int, int]] | None = None,
    *,
    rtol: float = RTOL,
    min_scale: float = 0.1,
) -> None:
    """Cell (row, col) of ``maps`` (N×K×rows×cols, computed from ``image``, N×C×H×W) equals
    ``original`` on the ``window`` of ``image`` at (row, col) times ``stride``, for every cell
    in ``cells`` (default: all), within ``rtol`` of the outputs' scale, which must exceed
    ``min_scale`` (or the comparison means nothing). ``original`` gets N×C×h×w crops and may
    return N×K or any shape of N·K values (N×1×1×K, say)."""
    maps = _array(maps)
    batch, rows, cols = maps.shape[0], *maps.shape[-2:]
    cells = list(cells) if cells is not None else [(r, c) for r in range(rows) for c in range(cols)]
    height, width = window
    expected = []
    with _no_grad(image):
        for row, col in cells:
            assert 0 <= row < rows and 0 <= col < cols, f"no cell {(row, col)} in {rows}x{cols}"
            top, left = row * stride[0], col * stride[1]
            crop = image[:, :, top : top + height, left : left + width]
            assert tuple(crop.shape[2:]) == (height, width), f"cell {(row, col)} leaves the image"
            if isinstance(crop, np.ndarray):
                crop = np.ascontiguousarray(crop)
            expected.append(_array(original(crop)).reshape(batch, -1))
    want = np.stack(expected)  # cells × N × K
    got = np.stack([maps[:, :, row, col] for row, col in cells])
    scale = float(np.abs(want).max())
    assert scale > min_scale, f"outputs too small to compare (scale {scale:.2e})"
    error = compare.relative_error(want, got)
    worst = cells[int(np.abs(want - got).reshape(len(cells), -1).max(1).argmax())]
    assert error <= rtol, f"relative error {error:.2e} > {rtol:.0e}, worst at cell {worst}"
