"""The algebra of exact ``ceil_mode`` borders, shared by the PyTorch pass
(:mod:`fc2conv.conversion.borders`, whose docstring derives it) and the ONNX one
(:mod:`fc2conv.onnx_in.borders`); no PyTorch here.

After a pool whose last window is partial at the canonical size, every map runs in four variants:
interior (0, 0), as the crop's last row (1, 0), last column (0, 1), or both (1, 1). A window
layer reads each kernel row from the interior variant except row ``last - 1`` (``last``: the
rows its last window holds at the canonical size), which it reads from the border variant. This
module says, for each window layer, which kernel blocks each variant reads and from which input
variant, and the pieces those blocks are computed from; the passes build the layers (PyTorch:
the variants stacked along the batch; ONNX: four tensors).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

__all__ = [
    "Borders",
    "Window",
    "border_note",
    "common_piece",
    "depends",
    "is_partial",
    "last_window",
    "lowest",
    "piece_input",
    "pieces",
    "reads",
    "reads_last_row_twice",
]

Pair = tuple[int, int]
Flags = tuple[bool, bool]  # per axis (rows, columns)
#: a kernel block: per axis (first row, end row, input variant read: 0 interior, 1 border)
Block = tuple[tuple[int, int, int], tuple[int, int, int]]
#: the variants, in the order they are stacked along the batch
VARIANTS: tuple[Pair, ...] = ((0, 0), (1, 0), (0, 1), (1, 1))
#: a piece of a kernel: the input variant it reads (an index into VARIANTS; 0 where the layer
#: reads one map for all variants), its kernel rows and its kernel columns (first, end)
Piece = tuple[int, Pair, Pair]


@dataclass(frozen=True)
class Window:
    """A window layer as the passes see it: ``kind`` "conv", "max" or "avg"; per axis the
    kernel, the stride and ``last``, the rows (columns) the last window holds at the canonical
    size."""

    kind: str
    kernel: Pair
    stride: Pair
    last: Pair
    groups: int = 1


@dataclass(frozen=True)
class Borders:
    """What a pass found and did: the pools whose last window is partial at the canonical size
    (by name; none: nothing to do), and why they were left inexact ("" when every map after
    them now also runs as the crop's border); ``trimmed``: the layers padded at the bottom and
    right only (as ceil_mode pools are written at older ONNX opsets) whose padding the pass
    dropped: it made only positions beyond the image, or a partial window, now exact."""

    pools: tuple[str, ...] = ()
    declined: str = ""
    trimmed: tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        """Whether the pass made the cells at those pools' borders exact."""
        return bool(self.pools) and not self.declined


def last_window(source: Pair, output: Pair, stride: Pair) -> Pair:
    """The rows and columns the last window of a window layer holds (fewer than its kernel: a
    ceil_mode pool's partial window), from its unpadded input and output sizes."""
    return source[0] - (output[0] - 1) * stride[0], source[1] - (output[1] - 1) * stride[1]


def is_partial(window: Window) -> bool:
    """Whether the last window at the canonical size holds fewer rows or columns than the
    kernel."""
    return any(m < k for m, k in zip(window.last, window.kernel, strict=True))


def reads_last_row_twice(window: Window, before: Flags, size: Pair) -> bool:
    """Whether two of the layer's windows read the crop's last row of an input whose variants
    differ (``before``), on an axis where the canonical output (``size``) has several cells:
    the variants cannot say which of them is the crop's."""
    return any(
        before[axis] and k >= s + m and size[axis] > 1
        for axis, (m, k, s) in enumerate(
            zip(window.last, window.kernel, window.stride, strict=True)
        )
    )


def depends(window: Window, before: Flags, size: Pair) -> Flags:
    """The axes on which the output of ``window`` differs between variants: where it pools a
    partial window, or reads the last row of an input that differs; never where the canonical
    output (``size``) is one cell (every variant is the crop's last there)."""
    found = [False, False]
    for axis in (0, 1):
        m, k = window.last[axis], window.kernel[axis]
        found[axis] = size[axis] > 1 and (m < k or (before[axis] and m - 1 < k))
    return found[0], found[1]


def lowest(window: Window) -> Pair:
    """The rows (columns) every variant's input is cut or padded to read as its window: the
    last window's, at most the kernel. Blocks ending at ``b`` read ``b - lowest`` more rows at
    the bottom (cut where negative), so that all variants keep one size."""
    return min(window.last[0], window.kernel[0]), min(window.last[1], window.kernel[1])


def reads(
    kernel: Pair, last: Pair, folded: Flags, plain: bool
) -> tuple[dict[Pair, tuple[bool, ...]], dict[tuple[bool, ...], list[Block]]]:
    """The variant each output is (on a ``folded`` axis, one where the canonical output is one
    cell, every variant is the crop's last; ``plain``: only the one map), and the kernel blocks
    each of those reads."""
    wanted = {
        variant: tuple(bool(flag) or fold for flag, fold in zip(variant, folded, strict=True))
        for variant in (((1, 1),) if plain else VARIANTS)
    }
    blocks = {
        on: [
            (rows, cols)
            for rows in _spans(kernel[0], last[0], on[0])
            for cols in _spans(kernel[1], last[1], on[1])
        ]
        for on in dict.fromkeys(wanted.values())
    }
    return wanted, blocks


def pieces(
    window: Window, folded: Flags, plain: bool, stacked: bool
) -> tuple[list[tuple[bool, ...]], dict[tuple[bool, ...], list[Piece]]]:
    """The variant each output is (:func:`reads`), and the kernel pieces each of those reads:
    its blocks, cut where any variant's blocks start or end so that the variants share what
    they read alike (the interior reads the whole kernel, the crop's last row all but its last
    row from the interior too): a convolution then costs ``(k + 1)² / k²`` of itself, not four
    times. Pools, and convolutions whose own last window is partial, keep their blocks whole,
    joined where they read one map (``stacked`` false): their pieces would read more padding
    than their kernel, which ONNX's operators refuse."""
    wanted, read = reads(window.kernel, window.last, folded, plain)
    cuts: list[list[int]] = [[], []]
    if window.kind == "conv" and not is_partial(window):
        cuts = [
            sorted({end for blocks in read.values() for block in blocks for end in block[axis][:2]})
            for axis in (0, 1)
        ]
    found = {
        on: [
            ((2 * cols[2] + rows[2]) if stacked else 0, rows[:2], cols[:2])
            for block_rows, block_cols in blocks
            for rows in _cut(block_rows, cuts[0])
            for cols in _cut(block_cols, cuts[1])
        ]
        for on, blocks in read.items()
    }
    if not any(cuts):
        found = {on: _joined(group) for on, group in found.items()}
    return list(wanted.values()), found


def common_piece(found: dict[tuple[bool, ...], list[Piece]]) -> Piece | None:
    """A piece every variant reads (once): where a convolution's bias can go."""
    shared = set.intersection(*(set(group) for group in found.values()))
    return min(shared) if shared else None


def piece_input(window: Window, piece: Piece) -> tuple[Pair, Pair]:
    """Where a piece reads its input: from row and column ``start``, with ``end`` rows and
    columns more (padded, positive) or fewer (cut, negative) at the bottom and right, so that
    every piece has the positions of the layer's last window (see :func:`lowest`)."""
    least = lowest(window)
    _, (top, bottom), (left, right) = piece
    return (top, left), (bottom - least[0], right - least[1])


def _cut(span: tuple[int, int, int], cuts: list[int]) -> list[tuple[int, int, int]]:
    """``span`` (first, end, variant read) cut at ``cuts``."""
    first, end, flag = span
    bounds = [first, *(cut for cut in cuts if first < cut < end), end]
    return [(a, b, flag) for a, b in pairwise(bounds)]


def _joined(group: list[Piece]) -> list[Piece]:
    """``group`` with two pieces that read one input and lie side by side joined into one,
    until none do."""
    found = list(group)
    joined = True
    while joined:
        joined = False
        for one, two in [(a, b) for a in found for b in found if a is not b]:
            if one[0] != two[0]:
                continue
            if one[2] == two[2] and one[1][1] == two[1][0]:  # rows side by side
                merged = (one[0], (one[1][0], two[1][1]), one[2])
            elif one[1] == two[1] and one[2][1] == two[2][0]:  # columns side by side
                merged = (one[0], one[1], (one[2][0], two[2][1]))
            else:
                continue
            found.remove(one)
            found[found.index(two)] = merged
            joined = True
            break
    return found


def _spans(kernel: int, last: int, border: bool) -> list[tuple[int, int, int]]:
    """The kernel rows a variant reads, as (first, end, variant read: 0 interior, 1 border): all
    of them from the interior; for the crop's last row, rows ``0 .. last - 2`` from the interior
    and row ``last - 1`` from the border variant (when the window reaches it)."""
    if not border or last - 1 >= kernel:
        return [(0, kernel, 0)]
    spans = [(0, last - 1, 0)] if last > 1 else []
    return [*spans, (last - 1, last, 1)]


def border_note(borders: Borders, every_cell: bool) -> str:
    """The plan's note on the pools of ``borders`` (found, so not empty): made exact (and
    ``every_cell``: nothing else reads beyond a cell's window), or why not."""
    if not borders.exact:
        return f"ceil_mode pools: the cells at their borders stay inexact ({borders.declined})"
    cells = (
        "every cell is the classifier on its window" if every_cell else "those borders are exact"
    )
    return (
        "ceil_mode pools pool a partial window at the crop's last row and column: each map "
        f"after them also runs as the crop's border (a second branch), so {cells}"
    )
