"""A finer output stride, exactly: the "à trous" trick (DeepLab, OverFeat's fine stride).

A converted model with output stride S gives one cell every S pixels. To get one every S/f
pixels, every tensor whose stride (pixels of the input per position) is above the target S/f is
computed at the target instead, f' = its stride / S/f times denser. A strided layer whose output
would pass the target runs with a smaller stride; every convolution or pool that reads a denser
tensor spreads its kernel by the same factor (dilation and padding times f'), so its taps fall
on the same input positions as before. The positions the original computed are computed
exactly as before; the positions in between are the windows half-way (for f = 2). For VGG-16
(stride 32 → 16): the last max-pool runs with stride 1 and fc6 (a 7×7 convolution) with
dilation 2.

Which tensors are above the target is measured, not assumed: each tensor's stride is the
growth of the input size over the growth of the tensor's size. Average pools that read a denser
tensor become depthwise convolutions with equal weights (they have no dilation). What cannot be
spread refuses with the reason: pools with ``ceil_mode``, padding that is not zeros, and any
operation that reduces a denser map over its positions (a squeeze-excitation gate after the
refined layers averages over more positions). Finally the refined model is run against the
original on random images with several cells: every f-th cell must equal the original's.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..compare import relative_error
from ..errors import UnsupportedModelError
from .tracing import output_leaves, propagate_shapes

__all__ = ["refine_stride"]

Pair = tuple[int, int]
#: functions that mix neighbouring positions and that refinement does not rewrite
SPATIAL_FUNCTIONS: tuple[Callable[..., object], ...] = (
    F.conv2d,
    F.pad,
    F.interpolate,
    F.unfold,
    torch.roll,
)
#: the largest relative error accepted between every f-th refined cell and the original
TOLERANCE = 1e-5


def _strides(
    gm: fx.GraphModule, shape: tuple[int, ...], growth: Pair, name: str
) -> dict[fx.Node, Pair | None]:
    """Every node's stride per spatial axis (input pixels per position), measured from how its
    size grows when the input grows by ``growth``; None for tensors that do not grow (vectors)."""
    small = propagate_shapes(gm, shape, name)
    large = propagate_shapes(gm, (*shape[:2], shape[2] + growth[0], shape[3] + growth[1]), name)
    strides: dict[fx.Node, Pair | None] = {}
    for node, before in small.items():
        after = large.get(node)
        if not isinstance(before, tuple) or after is None or len(before) < 3:
            strides[node] = None
            continue
        grown = [b - a for a, b in zip(before, after, strict=True)]
        axes = [i for i, g in enumerate(grown) if g > 0]
        if len(axes) != 2:
            strides[node] = None
            continue
        strides[node] = (growth[0] // grown[axes[0]], growth[1] // grown[axes[1]])
    return strides


#: the parameters of the pooling functions, in order, and the module each becomes
POOL_FUNCTIONS: dict[Callable[..., object], tuple[type[nn.Module], tuple[str, ...]]] = {
    F.avg_pool2d: (
        nn.AvgPool2d,
        ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    ),
    F.max_pool2d: (
        nn.MaxPool2d,
        ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    ),
}


def _pools_as_modules(gm: fx.GraphModule) -> None:
    """Calls of ``F.avg_pool2d`` and ``F.max_pool2d`` (the window pools conversion writes) as
    the equivalent modules, so that every pool is changed the same way."""
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in POOL_FUNCTIONS:
            continue
        kind, names = POOL_FUNCTIONS[node.target]
        options = dict(zip(names, node.args[1:], strict=False)) | dict(node.kwargs)
        if options.get("stride") in (None, [], ()):
            options["stride"] = options["kernel_size"]
        target = f"refined_{node.name}"
        gm.add_submodule(target, kind(**options))
        with gm.graph.inserting_before(node):
            pool = gm.graph.call_module(target, (node.args[0],))
        node.replace_all_uses_with(pool)
        pool.name = node.name
        gm.graph.erase_node(node)


def _pair(value: int | tuple[int, ...]) -> Pair:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _spread(
    module: nn.Module, stride: Pair, dilation: Pair, channels: int, where: str
) -> nn.Module:
    """``module`` (a convolution or pool) with a new stride and its kernel spread by
    ``dilation``; shares the weights."""
    if isinstance(module, nn.AvgPool2d) and dilation != (1, 1):
        kernel = _pair(module.kernel_size)
        padding = _pair(module.padding)
        if (
            module.ceil_mode
            or module.divisor_override
            or (any(padding) and not module.count_include_pad)
        ):
            raise UnsupportedModelError(
                f"{where}: an average pool with ceil_mode, a divisor or padding left out of the "
                "average has no dilated form; the stride cannot be refined exactly"
            )
        weight = next(iter(module.parameters()), None)
        conv = nn.Conv2d(
            channels,
            channels,
            kernel,
            stride=stride,
            padding=(padding[0] * dilation[0], padding[1] * dilation[1]),
            dilation=dilation,
            groups=channels,
            bias=False,
            device=weight.device if weight is not None else None,
        )
        conv.weight.requires_grad_(False).fill_(1 / (kernel[0] * kernel[1]))
        return conv
    spread = copy.copy(module)  # a new object; parameters shared
    spread.stride = stride  # type: ignore[assignment]
    if dilation == (1, 1):
        return spread
    if getattr(module, "ceil_mode", False) and stride != (1, 1):
        raise UnsupportedModelError(
            f"{where}: a strided pool with ceil_mode after the refined layers has no exact "
            "dilated form"
        )
    if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
        raise UnsupportedModelError(
            f"{where}: '{module.padding_mode}' padding of a denser map reads other pixels; the "
            "stride cannot be refined exactly"
        )
    old = _pair(getattr(module, "dilation", 1))
    spread.dilation = (old[0] * dilation[0], old[1] * dilation[1])  # type: ignore[assignment]
    given: str | int | tuple[int, ...] = getattr(module, "padding", 0)
    if isinstance(given, str):
        if given == "same" and stride != (1, 1):
            raise UnsupportedModelError(f"{where}: 'same' padding with a stride cannot be dilated")
        return spread
    padding = (_pair(given)[0] * dilation[0], _pair(given)[1] * dilation[1])
    if isinstance(module, nn.MaxPool2d) and any(padding):
        # PyTorch's max pool takes at most half its kernel as padding, however spread: pad
        # with -inf (what its own padding stands for) and pool without
        spread.padding = 0  # type: ignore[assignment]
        edges = (padding[1], padding[1], padding[0], padding[0])
        return nn.Sequential(nn.ConstantPad2d(edges, float("-inf")), spread)
    spread.padding = padding  # type: ignore[assignment]
    return spread


def _describe(module: nn.Module) -> str:
    return type(module).__name__


def _crop(gm: fx.GraphModule, origin: Pair, target: Pair, maps: list[str]) -> None:
    """Cut the refined maps named ``maps`` to the cells ``floor((n - origin) / target) + 1``:
    the map at the model's own stride has ``floor((n - origin) / stride) + 1``, and a padded
    trunk computes a few more refined cells past its last one, whose windows cross the
    image's border."""
    graph = gm.graph
    image = next(node for node in graph.nodes if node.op == "placeholder")
    output = next(node for node in graph.nodes if node.op == "output")
    with graph.inserting_before(output):
        counts = []
        for axis in (0, 1):
            size = graph.call_method("size", (image, 2 + axis))
            inside = graph.call_function(operator.sub, (size, origin[axis]))
            steps = graph.call_function(operator.floordiv, (inside, target[axis]))
            counts.append(graph.call_function(operator.add, (steps, 1)))
        for node in [n for n in graph.nodes if n.name in maps]:
            rows, cols = slice(None, counts[0]), slice(None, counts[1])
            cut = graph.call_function(
                operator.getitem, (node, (slice(None), slice(None), rows, cols))
            )
            output.replace_input_with(node, cut)


def _finer(value: Pair, target: Pair) -> Pair:
    """``value`` capped at the ``target`` stride, per axis."""
    return (min(value[0], target[0]), min(value[1], target[1]))


def _check_divides(stride: Pair, target: Pair, name: str) -> None:
    """Raise UnsupportedModelError where ``target`` does not divide ``stride`` on both axes."""
    if any(t < 1 or s % t for s, t in zip(stride, target, strict=True)):
        raise UnsupportedModelError(
            f"{name}: stride {target[0]}x{target[1]} does not divide the model's stride "
            f"{stride[0]}x{stride[1]}; pass a divisor of it"
        )


def _refine_layer(
    refined: fx.GraphModule,
    path: str,
    module: nn.Module,
    before: Pair,
    out: Pair,
    channels: int,
    target: Pair,
) -> str | None:
    """Replace the strided layer ``module`` at ``path`` (input stride ``before``, output stride
    ``out``) by one whose output stride is at most ``target``, its kernel spread to read a
    denser input; the line that says what changed, or None where nothing needs to."""
    finer_before = _finer(before, target)
    new_stride = (
        _finer(out, target)[0] // finer_before[0],
        _finer(out, target)[1] // finer_before[1],
    )
    dilation = (before[0] // finer_before[0], before[1] // finer_before[1])
    if _pair(module.kernel_size) == (1, 1):  # type: ignore[arg-type]
        dilation = (1, 1)  # a 1x1 kernel reads one position however spread
    if new_stride == _pair(module.stride) and dilation == (1, 1):  # type: ignore[arg-type]
        return None
    spread = _spread(module, new_stride, dilation, channels, path)
    *parent, field = path.split(".")
    setattr(refined.get_submodule(".".join(parent)), field, spread)
    layer = path.removeprefix("refined_")
    old = _pair(module.stride)  # type: ignore[arg-type]
    text = f"{layer}: {_describe(module)} stride {old} → {new_stride}"
    if dilation != (1, 1):
        text += f", kernel spread {dilation}"
        if isinstance(module, nn.AvgPool2d):
            text += " (as a depthwise convolution with equal weights)"
    return text


def _problem(
    node: fx.Node,
    module: nn.Module | None,
    strided: bool,
    out: Pair | None,
    shapes: dict[str, tuple[int, ...]],
) -> str | None:
    """Why ``node``, which reads a denser map, makes refinement inexact: it reduces the map
    over its positions, or mixes neighbouring positions without a rewrite; None where it
    does neither."""
    if out is None and isinstance(shapes.get(node.name), tuple) and node.op != "output":
        return (
            "reduces a refined map over its positions (e.g. a squeeze-excitation "
            "gate): more positions enter it, so no cell stays exact"
        )
    if (module is not None and hasattr(module, "kernel_size") and not strided) or (
        node.op == "call_function" and node.target in SPATIAL_FUNCTIONS
    ):
        function = cast(Callable[..., object], node.target)  # read where there is no module
        what = _describe(module) if module is not None else function.__name__
        return f"{what} mixes neighbouring positions of a refined map"
    return None


def _refine_layers(
    refined: fx.GraphModule,
    strides: dict[str, Pair | None],
    shapes: dict[str, tuple[int, ...]],
    target: Pair,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Refine every strided layer of ``refined`` in place; (one line per changed layer, the
    nodes that cannot be refined exactly with the reason)."""
    changes: list[str] = []
    problems: list[tuple[str, str]] = []
    for node in list(refined.graph.nodes):
        inputs = [a.name for a in node.all_input_nodes if strides.get(a.name)]
        out = strides.get(node.name)
        module = refined.get_submodule(node.target) if node.op == "call_module" else None
        strided = isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))
        if module is not None and strided and inputs and out:
            before = strides[inputs[0]]
            assert before is not None
            channels = int(shapes[inputs[0]][1])
            change = _refine_layer(refined, node.target, module, before, out, channels, target)
            if change is not None:
                changes.append(change)
            continue
        denser = [
            a
            for a in inputs
            if _finer(strides[a], target) != strides[a]  # type: ignore[arg-type]
        ]
        if not denser:
            continue
        problem = _problem(node, module, strided, out, shapes)
        if problem is not None:
            problems.append((node.name, problem))
    return changes, problems


def _map_names(refined: fx.GraphModule, strides: dict[str, Pair | None], stride: Pair) -> list[str]:
    """The outputs of ``refined`` that are maps at the model's own ``stride``."""
    output = next(node for node in refined.graph.nodes if node.op == "output")
    return [leaf.name for leaf in output_leaves(output.args[0]) if strides.get(leaf.name) == stride]


def refine_stride(
    gm: fx.GraphModule,
    stride: Pair,
    target: Pair,
    origin: Pair | None,
    input_shape: tuple[int, ...],
    map_index: int,
    name: str,
) -> tuple[fx.GraphModule, list[str]]:
    """A copy of ``gm`` (sharing its weights) whose class map has stride ``target`` instead of
    ``stride`` (each a divisor of it), and one line per changed layer. ``origin``: the map at
    ``stride`` has ``floor((n - origin) / stride) + 1`` cells for ``n`` pixels; the refined map
    is cut to ``floor((n - origin) / target) + 1`` (None: not cut, for class-activation maps).
    Raises UnsupportedModelError with the reason where that cannot be done exactly."""
    factors = (stride[0] // target[0], stride[1] // target[1])
    _check_divides(stride, target, name)
    if factors == (1, 1):
        return gm, []
    growth = (stride[0] * 4, stride[1] * 4)
    strides = {n.name: v for n, v in _strides(gm, input_shape, growth, name).items()}
    shapes = {n.name: v for n, v in propagate_shapes(gm, input_shape, name).items()}
    refined = fx.GraphModule(gm, copy.deepcopy(gm.graph))
    _pools_as_modules(refined)
    changes, problems = _refine_layers(refined, strides, shapes, target)
    if problems:
        raise UnsupportedModelError(
            f"{name}: the stride cannot be refined to {target[0]}x{target[1]} exactly:", problems
        )
    if origin is not None:
        _crop(refined, origin, target, _map_names(refined, strides, stride))
    refined.recompile()
    _check(gm, refined, factors, input_shape, growth, map_index, name)
    return refined.eval(), changes


def _check(
    gm: fx.GraphModule,
    refined: fx.GraphModule,
    factors: Pair,
    input_shape: tuple[int, ...],
    growth: Pair,
    map_index: int,
    name: str,
) -> None:
    """Every ``factors``-th cell of the refined map equals the original map, on random images
    a few cells larger than the canonical size (skipped for weights on the meta device)."""
    parameter = next(iter(gm.parameters()), None)
    if parameter is not None and parameter.is_meta:
        return
    height = input_shape[2] + growth[0] // 2
    width = input_shape[3] + growth[1] // 2 + growth[1] // 4
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, input_shape[1], height, width, generator=generator)
    with torch.no_grad():
        coarse = output_leaves(gm(images))[map_index]
        fine = output_leaves(refined(images))[map_index]
    sampled = fine[..., :: factors[0], :: factors[1]]
    if sampled.shape != coarse.shape:
        raise UnsupportedModelError(
            f"{name}: the refined map ({tuple(fine.shape[-2:])}) does not hold the original "
            f"cells ({tuple(coarse.shape[-2:])}); the stride cannot be refined exactly"
        )
    error = relative_error(coarse, sampled)
    if not error <= TOLERANCE or not math.isfinite(error):
        raise UnsupportedModelError(
            f"{name}: with a finer stride, the original cells differ by {error:.1e} (relative); "
            "the stride cannot be refined exactly for this model"
        )
