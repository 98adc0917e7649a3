"""Exact cells at ``ceil_mode`` borders: every cell is the classifier on its window.

A ``ceil_mode`` pool whose last window at the canonical size runs past the map pools a *partial*
window there (max or mean over the rows the crop holds); in a larger image the same position is a
full window over pixels beyond the crop, so the dense map is not the classifier on a window. Each
map after such a pool is therefore computed in four variants, stacked along the batch axis:
interior (0, 0); as the crop's last row (1, 0), last column (0, 1), or both (1, 1). A window layer
reads each kernel row from the interior variant except the one that, at the canonical size, is
the crop's last row (position ``m - 1``, ``m`` = the rows the last window holds): that row comes
from the border variant, so a convolution becomes a sum of convolutions on pieces of its kernel
(each piece computed once and shared by the variants that read it alike), a max pool a maximum
of pools, an average pool a weighted sum. Element-wise layers, and permutes that keep the batch
first, run on the stack unchanged. Where the canonical map is one row (column) high, every row
is the crop's last and the variants fold; at 1x1 the map is exact again and the stack ends.

All variants keep one size: a kernel slice ending at ``b`` reads its input cut (or padded) by
``b - m'`` rows at the bottom, ``m' = min(m, k)``, so that every slice has the positions of a
window of ``m'`` rows; positions that no crop inside the image reaches hold values no cell uses,
and the map ends at the last cell whose window lies inside the image.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..partial_windows import (
    Borders,
    Flags,
    Pair,
    Piece,
    Window,
    common_piece,
    depends,
    is_partial,
    last_window,
    piece_input,
    pieces,
    reads_last_row_twice,
)

__all__ = ["Borders", "exact_borders"]

#: modules that act on each position and batch entry alone
POINTWISE_MODULES = (
    nn.BatchNorm2d,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.ReLU,
    nn.ReLU6,
    nn.PReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Mish,
    nn.Softplus,
)
POINTWISE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg,
    torch.add, torch.sub, torch.mul, torch.div, torch.relu, torch.sigmoid, torch.tanh,
    torch.clamp, F.relu, F.relu6, F.gelu, F.silu, F.hardswish, F.hardsigmoid, F.hardtanh,
    F.leaky_relu, F.elu, F.mish, F.softplus, F.prelu,
}  # fmt: skip
POINTWISE_METHODS = {
    "add", "sub", "mul", "div", "relu", "sigmoid", "tanh", "clamp", "contiguous", "neg",
}  # fmt: skip
#: functions and methods whose ``dim`` must be the channel axis
CHANNEL_FUNCTIONS = {torch.cat, F.softmax, F.log_softmax, torch.softmax, torch.log_softmax}
CHANNEL_METHODS = {"softmax", "log_softmax"}


@dataclass(frozen=True)
class Variants:
    """The pass's decision on one window layer: it reads a stack of variants (``stacked``), or
    one map; its output's variants differ on the axes ``depends``."""

    window: Window
    stacked: bool
    depends: Flags


@dataclass
class Carried:
    """The pass's decision on the graph: the window layers that run as variants, and the nodes
    that run on the stack unchanged, each with the plain maps beside the stack that it reads
    (repeated for every variant)."""

    windows: dict[fx.Node, Variants] = field(default_factory=dict)
    pointwise: dict[fx.Node, list[fx.Node]] = field(default_factory=dict)


def exact_borders(gm: fx.GraphModule, example: torch.Tensor) -> Borders:
    """Rewrite ``gm`` in place so that its cells at ``ceil_mode`` borders are exact (see the
    module docstring); ``example`` is an input at the canonical size. The result names the pools
    whose last window is partial at that size, and why they were left alone (a layer the pass
    does not know between such a pool and the class map, padding) where they were."""
    shapes = _spatial_shapes(gm, example)
    windows: dict[fx.Node, Window] = {}
    reasons = []
    for node in gm.graph.nodes:
        found = _window(gm, node, shapes)
        if isinstance(found, str):
            reasons.append(found)
        elif found is not None:
            windows[node] = found
    partial = [str(node.target) for node, window in windows.items() if is_partial(window)]
    if not partial:
        return Borders()
    pools = tuple(dict.fromkeys(partial))
    carried = reasons[0] if reasons else _carry(gm, windows, shapes)
    if isinstance(carried, str):
        return Borders(pools, carried)
    _rewrite(gm, carried, shapes)
    return Borders(pools)


def _spatial_shapes(gm: fx.GraphModule, example: torch.Tensor) -> dict[fx.Node, Pair]:
    """The (height, width) of every 4-D tensor the graph computes at the canonical size."""
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(gm).propagate(example)
    found = {}
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        shape = getattr(meta, "shape", None)
        if shape is not None and len(shape) == 4:
            found[node] = (int(shape[2]), int(shape[3]))
    return found


def _window(gm: fx.GraphModule, node: fx.Node, shapes: dict[fx.Node, Pair]) -> Window | str | None:
    """The window layer ``node`` is (a convolution or a max or average pool, as a module), None
    for any other node, or why a window layer the pass cannot take is in the way."""
    if node.op != "call_module":
        if node.op == "call_function" and node.target in (F.max_pool2d, F.avg_pool2d):
            ceil = node.kwargs.get("ceil_mode", node.args[4] if len(node.args) > 4 else False)
            return f"{node.name}: a functional pool with ceil_mode" if ceil else None
        return None
    module = gm.get_submodule(str(node.target))
    if not isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return None
    pair = nn.modules.utils._pair
    padding = pair(module.padding) if not isinstance(module.padding, str) else module.padding
    if isinstance(module, nn.Conv2d):
        kernel, stride, dilation = module.kernel_size, module.stride, module.dilation
        kind, groups = "conv", module.groups
    else:
        kernel, stride = pair(module.kernel_size), pair(module.stride or module.kernel_size)
        dilation = pair(getattr(module, "dilation", 1))
        kind, groups = ("max" if isinstance(module, nn.MaxPool2d) else "avg"), 1
        if isinstance(module, nn.AvgPool2d) and module.divisor_override:
            return f"{node.name}: an average pool with a divisor"
    if padding not in ((0, 0), "valid") and tuple(kernel) != (1, 1):
        return f"{node.name}: pads its input"
    if tuple(dilation) != (1, 1):
        return f"{node.name}: a dilated window"
    source = node.args[0]
    if not isinstance(source, fx.Node) or source not in shapes or node not in shapes:
        return None
    last = last_window(shapes[source], shapes[node], stride)  # type: ignore[arg-type]
    return Window(kind, tuple(kernel), tuple(stride), last, groups)  # type: ignore[arg-type]


def _carry(
    gm: fx.GraphModule, windows: dict[fx.Node, Window], shapes: dict[fx.Node, Pair]
) -> Carried | str:
    """Follow the variants from the first partial pool to the class map: which axes each node
    depends on borders along, and so which window layers run as variants and which nodes run on
    the stack. Or why they cannot be carried: a layer that is not element-wise, a softmax or
    concatenation across the batch, two windows that both read a crop's last row, or a map the
    stack reaches whose canonical size is more than one cell."""
    carried = Carried()
    #: nodes the stack reaches → per axis of the tensor, whether its variants differ along it
    border: dict[fx.Node, tuple[bool, ...]] = {}
    for node in gm.graph.nodes:
        inputs = [n for n in node.all_input_nodes if n in border]
        window = windows.get(node)
        if window is not None:
            axes = border[inputs[0]] if inputs else (False,) * 4
            if any(axes[:2]):
                return f"{node.name}: reads a map whose rows or columns were permuted away"
            before = (axes[2], axes[3])
            if reads_last_row_twice(window, before, shapes[node]):
                return f"{node.name}: two of its windows read the crop's last row"
            differ = depends(window, before, shapes[node])
            if any(before) or is_partial(window):
                carried.windows[node] = Variants(window, any(before), differ)
            if any(differ) or any(before):
                border[node] = (False, False, *differ)
            continue
        if not inputs:
            continue
        if node.op == "output":
            if any(any(border[n]) for n in inputs):
                return "the class map has more than one cell at the canonical size"
            continue
        order = _permutation(node)
        if order is not None:  # the batch stays first: the stack runs through, its axes move
            if order[0] != 0:
                return f"{node.name}: moves the batch axis"
            border[node] = tuple(border[inputs[0]][axis] for axis in order)
            continue
        reason = _pointwise(gm, node)
        if reason:
            return reason
        flags = tuple(any(border[n][axis] for n in inputs) for axis in range(4))
        border[node] = flags
        if any(flags):
            carried.pointwise[node] = [
                source
                for source in dict.fromkeys(node.all_input_nodes)
                if not any(border.get(source, ())) and source in shapes and _from_input(source)
            ]
    return carried


def _permutation(node: fx.Node) -> list[int] | None:
    """The axis order of a ``permute`` or ``transpose`` of a 4-D map (None: another node)."""
    args: list[Any] = list(node.args)
    if node.target in ("permute", torch.permute):
        dims = args[1:] if node.op == "call_method" else args[1]
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else dims
        order = [int(axis) % 4 for axis in dims]
        return order if sorted(order) == [0, 1, 2, 3] else None
    if node.target in ("transpose", torch.transpose) and len(args) == 3:
        first, second = int(args[1]) % 4, int(args[2]) % 4
        order = [0, 1, 2, 3]
        order[first], order[second] = second, first
        return order
    return None


def _pointwise(gm: fx.GraphModule, node: fx.Node) -> str:
    """Why ``node`` cannot run on the stack of variants ("" when it can)."""
    what = node.name  # an operation's own name (a function's target may print as <function ...>)
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        what = f"{node.target} ({type(module).__name__})"
        if isinstance(module, POINTWISE_MODULES):
            return ""
        if isinstance(module, (nn.Softmax, nn.LogSoftmax)) and module.dim == 1:
            return ""
        return f"{what}: a layer between a ceil_mode pool and the class map"
    if node.op == "call_function" and node.target in POINTWISE_FUNCTIONS:
        return ""
    if node.op == "call_method" and node.target in POINTWISE_METHODS:
        return ""
    if node.target in CHANNEL_FUNCTIONS or node.target in CHANNEL_METHODS:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        return "" if dim in (1, -3) else f"{what}: not along the channels"
    return f"{what}: an operation between a ceil_mode pool and the class map"


def _rewrite(gm: fx.GraphModule, carried: Carried, shapes: dict[fx.Node, Pair]) -> None:
    """Carry the variants through the graph as :func:`_carry` decided (see the module
    docstring)."""
    graph = gm.graph
    replaced: dict[fx.Node, fx.Node] = {}
    for node in list(graph.nodes):
        variants = carried.windows.get(node)
        if variants is not None:
            window = variants.window
            folded = (shapes[node][0] == 1, shapes[node][1] == 1)
            plain = not any(variants.depends)
            with graph.inserting_before(node):
                weight, bias = _parameters(graph, gm, node, window)
                settings: dict[str, Any] = {
                    "kind": window.kind,
                    "kernel": window.kernel,
                    "stride": window.stride,
                    "last": window.last,
                    "groups": window.groups,
                    "stacked": variants.stacked,
                    "folded": folded,
                    "plain": plain,
                }
                new = graph.call_function(window_variants, (node.args[0], weight, bias), settings)
            node.replace_all_uses_with(new)
            graph.erase_node(node)
            replaced[node] = new
            continue
        for source in carried.pointwise.get(node, ()):  # plain maps beside the stack
            current = replaced.get(source, source)
            with graph.inserting_before(node):
                repeated = graph.call_function(torch.cat, ([current] * 4, 0))
            node.replace_input_with(current, repeated)
    graph.lint()
    gm.recompile()


def _from_input(node: fx.Node) -> bool:
    """Whether ``node`` is computed from the model's input (not a constant or a parameter)."""
    seen, todo = set(), [node]
    while todo:
        current = todo.pop()
        if current.op == "placeholder":
            return True
        if current not in seen:
            seen.add(current)
            todo.extend(current.all_input_nodes)
    return False


def _parameters(
    graph: fx.Graph, gm: fx.GraphModule, node: fx.Node, window: Window
) -> tuple[fx.Node | None, fx.Node | None]:
    """The graph's reads of a convolution's weight and bias (the module's own: shared)."""
    if window.kind != "conv":
        return None, None
    module = gm.get_submodule(str(node.target))
    weight = graph.get_attr(f"{node.target}.weight")
    bias = graph.get_attr(f"{node.target}.bias") if module.bias is not None else None
    return weight, bias


def _variants(stack: torch.Tensor) -> list[torch.Tensor]:
    """The four variants of a stack (a reshape, not a split: the ONNX export folds it)."""
    grouped = stack.unflatten(0, (4, -1))
    return [grouped[index] for index in range(4)]


def window_variants(
    source: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    *,
    kind: str,
    kernel: Pair,
    stride: Pair,
    last: Pair,
    groups: int,
    stacked: bool,
    folded: Flags,
    plain: bool,
) -> torch.Tensor:
    """The four variants (interior, last row, last column, both; stacked along the batch) of
    the window layer (:class:`Window`'s fields) over ``source`` (a stack of variants, or one
    map that all four read); ``folded``: the axes on which the canonical output is one cell,
    where every variant is the crop's last. ``plain``: the variants are all equal, and the
    result is the one map. Each kernel piece (:func:`fc2conv.partial_windows.pieces`) is
    computed once, with a slice of the layer's own weight."""
    window = Window(kind, kernel, stride, last, groups)
    inputs = _variants(source) if stacked else [source]
    order, found = pieces(window, folded, plain, stacked)
    biased = common_piece(found) if bias is not None else None  # every variant reads it once
    made: dict[Any, torch.Tensor] = {}
    computed = {}
    for on, group in found.items():
        parts = []
        for piece in group:
            if piece not in made:
                with_bias = bias if piece == biased else None
                made[piece] = _piece(inputs[piece[0]], weight, with_bias, window, piece)
            parts.append(made[piece])
        computed[on] = _combine(parts, window, group)
        if bias is not None and biased is None:
            computed[on] = computed[on] + bias.view(1, -1, 1, 1)
    results = [computed[on] for on in order]
    return results[0] if plain else torch.cat(results, 0)


def _piece(
    data: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    window: Window,
    piece: Piece,
) -> torch.Tensor:
    """The layer over one kernel piece, on its input cut so that every piece has the positions
    of the layer's last window."""
    start, end = piece_input(window, piece)
    _, (top, bottom), (left, right) = piece
    data = _cut(data, start, end)
    if window.kind == "conv":
        assert weight is not None
        kernel = weight[:, :, top:bottom, left:right]
        return F.conv2d(data, kernel, bias, window.stride, 0, 1, window.groups)
    size = (bottom - top, right - left)
    if window.kind == "max":
        return F.max_pool2d(data, size, window.stride)
    return F.avg_pool2d(data, size, window.stride)


def _combine(parts: list[torch.Tensor], window: Window, group: list[Piece]) -> torch.Tensor:
    """One variant from its pieces: their sum (a convolution), maximum, or area-weighted
    mean."""
    if window.kind == "avg":
        areas = [(rows[1] - rows[0]) * (cols[1] - cols[0]) for _, rows, cols in group]
        parts = [part * (area / sum(areas)) for part, area in zip(parts, areas, strict=True)]
    result = parts[0]
    for part in parts[1:]:
        result = torch.maximum(result, part) if window.kind == "max" else result + part
    return result


def _cut(data: torch.Tensor, start: Pair, end: Pair) -> torch.Tensor:
    """``data`` from row and column ``start``, with ``end`` rows and columns padded (positive)
    or cut (negative) at the bottom and right."""
    data = data[:, :, start[0] :, start[1] :]
    pad = (0, max(end[1], 0), 0, max(end[0], 0))
    if any(pad):
        data = F.pad(data, pad)
    stop = (end[0] if end[0] < 0 else None, end[1] if end[1] < 0 else None)
    if stop != (None, None):
        data = data[:, :, : stop[0], : stop[1]]
    return data
