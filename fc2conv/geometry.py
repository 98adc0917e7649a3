"""Where each cell of a class map comes from in the input image.

Every conv/pool layer maps a size ``n`` to ``floor((n + a) / s) + b``; a chain of them composes to
``floor((n - origin) / stride) + 1``. So a few numbers per axis describe a converted model: the
output ``stride``, the ``origin`` of that formula, the ``min_size`` the model runs at, and the
image box a cell stands for (``offset`` and ``window``): cell ``i`` covers
``[offset + i*stride, offset + i*stride + window)``. Some models run only at certain sizes (a
space-to-depth stem needs multiples of 4): ``size_step`` says which, the canonical size plus a
multiple of it. The numbers are measured on the converted graph with meta or fake tensors, and
the formula is checked at further sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np

from .errors import InputSizeError, UnsupportedModelError

__all__ = ["Geometry", "check_sizes", "measure_geometry", "padding_note"]

Pair = tuple[int, int]
#: the cells of the map at ``(height, width)``, (0, 0) where the model does not run
Cells = Callable[[int, int], Pair]


@dataclass(frozen=True)
class Geometry:
    """Stride, window, offset and minimal input size of a converted model, as (height, width).

    ``window`` is the image box one cell stands for: the canonical input for ``mode="window"``
    (at canonical size the single cell *is* the classifier's output), one stride for ``mode="cam"``.
    """

    canonical_size: Pair
    stride: Pair
    window: Pair
    offset: Pair
    min_size: Pair
    origin: Pair | None = None  # n with floor((n - origin)/stride) + 1 cells; min_size if None
    size_step: Pair = (1, 1)  # valid inputs: canonical size plus a multiple of this

    def output_size(self, height: int, width: int, name: str = "model") -> Pair:
        """Rows and columns of the class map for an input of ``height``×``width``."""
        self.check_input(height, width, name)
        origin = self.origin or self.min_size
        return (
            (height - origin[0]) // self.stride[0] + 1,
            (width - origin[1]) // self.stride[1] + 1,
        )

    def usable_size(self, height: int, width: int) -> Pair:
        """The largest size at most ``height``×``width`` that the model takes (the same where
        every size is taken; else the canonical size plus a multiple of ``size_step``)."""
        canonical, step = self.canonical_size, self.size_step
        return (
            height - (height - canonical[0]) % step[0],
            width - (width - canonical[1]) % step[1],
        )

    def check_input(self, height: int, width: int, name: str = "model") -> None:
        """Raise InputSizeError for an input that is too small for one cell, or of a size the
        model does not take."""
        min_h, min_w = self.min_size
        if height < min_h or width < min_w:
            win_h, win_w = self.window
            raise InputSizeError(
                f"{name}: input {height}x{width} is smaller than the {min_h}x{min_w} minimum "
                f"for one heatmap cell (window {win_h}x{win_w}); pass an image of at least "
                f"{min_h}x{min_w}"
            )
        if self.usable_size(height, width) != (height, width):
            usable = self.usable_size(height, width)
            raise InputSizeError(
                f"{name}: input {height}x{width} is not a size this model takes (the canonical "
                f"{self.canonical_size[0]}x{self.canonical_size[1]} plus multiples of "
                f"{self.size_step[0]}x{self.size_step[1]}); crop it to {usable[0]}x{usable[1]}"
            )

    def cell_boxes(self, rows: int, cols: int) -> np.ndarray:
        """Image box (x1, y1, x2, y2) of every cell, shape rows×cols×4, float32."""
        y1 = self.offset[0] + self.stride[0] * np.arange(rows, dtype=np.float32)
        x1 = self.offset[1] + self.stride[1] * np.arange(cols, dtype=np.float32)
        yy, xx = np.meshgrid(y1, x1, indexing="ij")
        return np.stack([xx, yy, xx + self.window[1], yy + self.window[0]], axis=-1)

    def as_dict(self) -> dict[str, list[int]]:
        return {key: list(value) for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict) -> Geometry:
        return cls(
            **{
                key: tuple(int(v) for v in data[key])  # type: ignore[arg-type]
                for key in cls.__dataclass_fields__
                if key in data
            }
        )

    def __str__(self) -> str:
        def pair(p: Pair) -> str:
            return f"{p[0]}x{p[1]}"

        text = (
            f"stride {pair(self.stride)}, window {pair(self.window)}, offset {pair(self.offset)}, "
            f"minimal input {pair(self.min_size)}, canonical input {pair(self.canonical_size)}"
        )
        if self.size_step != (1, 1):
            text += f", sizes in steps of {pair(self.size_step)}"
        return text


def padding_note(layers: list[str]) -> str:
    """What a plan says of ``layers`` that pad or pool with ceil_mode (the first three named)."""
    shown = ", ".join(layers[:3]) + (f" and {len(layers) - 3} more" if len(layers) > 3 else "")
    return (
        f"{shown} pad their input or pool with ceil_mode: at the canonical size the cell is "
        "exactly the classifier, but inside a larger image a cell also reads pixels beyond its "
        "window where the classifier sees padding or a partial pooling window"
    )


#: the size steps tried, smallest first: any up to 64 pixels, then (where probing costs nothing)
#: the block sizes of windowed attention (8x8 attention blocks at stride 32: multiples of 256)
SIZE_STEPS = tuple(range(1, 65))
BLOCK_STEPS = (128, 256, 512)


def measure_geometry(
    map_size: Callable[[int, int], Pair | None],
    canonical: Pair,
    mode: str,
    name: str,
    refined: bool = False,
    far_size: int | None = None,
) -> Geometry:
    """Measure stride, origin, size step and minimal size from ``map_size(height, width)``
    (None: the model does not run at that size). ``refined``: the stride was made finer than
    the model's own, and a padded trunk may give more than one cell at the canonical size.

    ``map_size`` should be cheap (meta tensors): a few dozen calls are made. The stride is
    read from the growth of the map over about ``far_size`` pixels (default: 2**14 size
    steps; give less where ``map_size`` really runs the model, which also keeps the size steps
    tried to at most 64 pixels).
    """
    cells: Cells = partial(_cells, map_size)
    canonical_cells = cells(*canonical)
    _check_canonical(canonical_cells, mode, name, refined)
    step = _size_step(cells, canonical, name, far_size)
    stride = _stride(cells, canonical, canonical_cells, step, name, far_size)
    origin = _origin(cells, canonical, canonical_cells, step, stride)
    runs = _fewest_steps(cells, canonical, step, stride, origin)
    smallest_size = _at(canonical, step, runs)
    window = canonical if mode == "window" else (stride[0], stride[1])
    geometry = Geometry(
        canonical,
        (stride[0], stride[1]),
        window,
        (0, 0),
        smallest_size,
        None if origin == smallest_size else origin,
        (step[0], step[1]),
    )
    _check_further(cells, geometry, runs, name)
    return geometry


def _cells(map_size: Callable[[int, int], Pair | None], height: int, width: int) -> Pair:
    """Rows and columns of the map at ``height``×``width``; (0, 0) where the model does not
    run there."""
    size = map_size(height, width)
    return size if size is not None else (0, 0)


def _check_canonical(canonical_cells: Pair, mode: str, name: str, refined: bool) -> None:
    """Raise UnsupportedModelError where the map at the canonical size is empty, or (for
    ``mode="window"``, unrefined) is more than one cell."""
    if min(canonical_cells) < 1:
        raise UnsupportedModelError(
            f"{name}: the converted model gives no output at canonical size"
        )
    if mode == "window" and canonical_cells != (1, 1) and not refined:
        raise UnsupportedModelError(
            f"{name}: at canonical size the converted model gives a "
            f"{canonical_cells[0]}x{canonical_cells[1]} map instead of one cell"
        )


def _size_step(cells: Cells, canonical: Pair, name: str, far_size: int | None) -> list[int]:
    """Per axis, the smallest step at which the model runs at the canonical size plus several
    multiples of it (one odd size that happens to work is not enough)."""
    step = [0, 0]
    for axis in (0, 1):
        for extra in SIZE_STEPS + (BLOCK_STEPS if far_size is None else ()):
            sizes = [[canonical[0], canonical[1]] for _ in range(4)]
            for size, multiple in zip(sizes, (1, 2, 3, 7), strict=True):
                size[axis] += multiple * extra
            if all(min(cells(size[0], size[1])) >= 1 for size in sizes):
                step[axis] = extra
                break
        else:
            blocks = ", nor 128, 256 or 512 larger" if far_size is None else ""
            raise UnsupportedModelError(
                f"{name}: the converted model runs at no size from 1 to 64 pixels larger than "
                f"the canonical size{blocks}; its layers only accept certain sizes"
            )
    return step


def _stride(
    cells: Cells,
    canonical: Pair,
    canonical_cells: Pair,
    step: list[int],
    name: str,
    far_size: int | None,
) -> list[int]:
    """Per axis, the output stride: the pixels added over the cells gained, far above the
    canonical size (2**14 steps, or about ``far_size`` pixels)."""
    steps = 1 << 14 if far_size is None else [max(1, far_size // step[axis]) for axis in (0, 1)]
    far = [step[axis] * (steps if isinstance(steps, int) else steps[axis]) for axis in (0, 1)]
    grown = cells(canonical[0] + far[0], canonical[1] + far[1])
    stride = [0, 0]
    for axis in (0, 1):
        growth = grown[axis] - canonical_cells[axis]
        if growth <= 0:
            raise UnsupportedModelError(
                f"{name}: the converted model does not run on larger inputs or its map does not "
                "grow with them; its layers only accept certain sizes"
            )
        stride[axis] = round(far[axis] / growth)
    return stride


def _at(canonical: Pair, step: Sequence[int], k: Sequence[int]) -> Pair:
    """The size ``k`` steps from the canonical one, per axis."""
    return canonical[0] + k[0] * step[0], canonical[1] + k[1] * step[1]


def _smallest(
    cells: Cells,
    canonical: Pair,
    step: list[int],
    low: list[int],
    high: list[int],
    holds: Callable[[Pair, Pair], Pair],
) -> list[int]:
    """Per axis, the smallest number of steps in [low, high] at which ``holds(size, cells)``
    (a monotone test) is true. One probe advances both axes' binary searches; when one
    axis is too small for the model to run at all, they are probed apart."""
    low, high = list(low), list(high)
    while low != high:
        middle = [(low[axis] + high[axis]) // 2 for axis in (0, 1)]
        height, width = _at(canonical, step, middle)
        measured = cells(height, width)
        if min(measured) < 1:
            measured = (cells(height, canonical[1])[0], cells(canonical[0], width)[1])
        result = holds((height, width), measured)
        for axis in (0, 1):
            if low[axis] < high[axis]:
                if result[axis]:
                    high[axis] = middle[axis]
                else:
                    low[axis] = middle[axis] + 1
    return low


def _origin(
    cells: Cells, canonical: Pair, canonical_cells: Pair, step: list[int], stride: list[int]
) -> Pair:
    """The ``origin`` of cells = floor((n - origin) / stride) + 1, for every size the model
    takes. It is read where the map gains its next row (column) above the canonical size, not
    from the smallest size the model runs at: a layer that needs a minimum size can cut the
    map off above the origin."""
    more = _smallest(
        cells,
        canonical,
        step,
        [1, 1],
        [-(-stride[axis] // step[axis]) for axis in (0, 1)],
        lambda size, measured: (
            measured[0] > canonical_cells[0],
            measured[1] > canonical_cells[1],
        ),
    )
    first_more = _at(canonical, step, more)
    # cells there: one more than at the canonical size, or several where the size step is
    # larger than the stride (windowed attention taking whole blocks only)
    grown_cells = (
        cells(first_more[0], canonical[1])[0],
        cells(canonical[0], first_more[1])[1],
    )
    return (
        first_more[0] - (grown_cells[0] - 1) * stride[0],
        first_more[1] - (grown_cells[1] - 1) * stride[1],
    )


def _regular(origin: Pair, stride: list[int], size: Pair, measured: Pair) -> Pair:
    """Whether the model runs at ``size`` and gives the cells the formula predicts: below the
    smallest such size a model may not run, or may run otherwise (pooling its map up to the
    size it needs, as timm's VGG head does)."""
    expected = [(size[axis] - origin[axis]) // stride[axis] + 1 for axis in (0, 1)]
    return (
        expected[0] >= 1 and measured[0] == expected[0],
        expected[1] >= 1 and measured[1] == expected[1],
    )


def _fewest_steps(
    cells: Cells, canonical: Pair, step: list[int], stride: list[int], origin: Pair
) -> list[int]:
    """Per axis, the steps from the canonical size (zero or fewer) to the smallest size at
    which the map is regular: the minimal input size."""
    fewest = [min(0, -((canonical[axis] - max(1, origin[axis])) // step[axis])) for axis in (0, 1)]
    return _smallest(
        cells,
        canonical,
        step,
        fewest,
        [0, 0],
        lambda size, measured: _regular(origin, stride, size, measured),
    )


def _check_further(cells: Cells, geometry: Geometry, runs: list[int], name: str) -> None:
    """Raise UnsupportedModelError where the map at a few further sizes (off the stride grid,
    far above the canonical size, the minimal size and just above it) is not the one
    ``geometry`` predicts."""
    canonical, step = geometry.canonical_size, geometry.size_step
    stride = geometry.stride
    further = [
        _at(canonical, step, [-(-(stride[0] + 5) // step[0]), -(-(2 * stride[1] + 7) // step[1])]),
        _at(canonical, step, [-(-(canonical[0] + 37) // step[0]), 1]),
        geometry.min_size,
        _at(canonical, step, [runs[0] + max(1, stride[0] // step[0] - 1), runs[1] + 1]),
    ]
    for height, width in further:
        measured = cells(height, width)
        if measured != geometry.output_size(height, width, name):
            raise UnsupportedModelError(
                f"{name}: the converted model does not give a regular map at {height}x{width} "
                f"(got {measured[0]}x{measured[1]} cells); its layers only accept certain sizes"
            )


def check_sizes(geometry: Geometry) -> list[tuple[int, int]]:
    """Canonical size, a non-square size off the stride grid, and a 3x2-cell size on the grid
    (all among the sizes the model takes).

    The two larger sizes stay close to the canonical one: a size's activations are the largest
    allocation of an export's checks, and these two already cover maps of several cells in both
    directions, on and off the stride grid.
    """
    height, width = geometry.canonical_size
    stride_h, stride_w = geometry.stride
    step_h, step_w = geometry.size_step

    def up(extra: int, step: int) -> int:  # the next multiple of the step
        return extra + (-extra) % step

    odd = [height + up(37, step_h), width + up(101, step_w)]  # 261x325 for 224x224 models
    if odd[0] % stride_h == 0 and step_h < stride_h:
        odd[0] += step_h
    if odd[1] % stride_w == 0 and step_w < stride_w:
        odd[1] += step_w
    grid = (height + up(2 * stride_h, step_h), width + up(stride_w, step_w))
    return [(height, width), (odd[0], odd[1]), grid]
