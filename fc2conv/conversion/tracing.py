"""Tracing with torch.fx, and shape propagation on fake tensors (no compute, no memory)."""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode

from ..errors import ForwardTraceError, TraceError
from .linear_conv import LinearConv2d

__all__ = [
    "ShapeProbe",
    "fake_run",
    "meta_run",
    "meta_state",
    "node_name",
    "output_leaves",
    "propagate_shapes",
    "shapes_until_failure",
    "trace",
]


class _Tracer(fx.Tracer):
    """torch.fx's tracer, treating the given module types and qualified names as leaves (calls
    not traced into). ``failed`` names the innermost module whose forward raised."""

    def __init__(
        self, leaf_types: tuple[type, ...], autowrap: tuple[Callable, ...], leaves: set[str]
    ) -> None:
        super().__init__(autowrap_functions=autowrap)
        self.leaf_types = leaf_types
        self.leaves = leaves
        self.failed: str | None = None

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return (
            qualified_name in self.leaves
            or isinstance(module, self.leaf_types)
            or super().is_leaf_module(module, qualified_name)
        )

    def call_module(self, m: nn.Module, forward: Callable, args: Any, kwargs: Any) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed is None:  # the innermost module sees the exception first
                self.failed = self.path_of_module(m)
            raise


def _untraceable() -> tuple[tuple[type, ...], tuple[Callable, ...]]:
    """Module types and functions that libraries ask torch.fx not to trace into (timm registers
    those that compute padding or branch on sizes in Python), when such a library is loaded."""
    if "timm" not in sys.modules:
        return (), ()
    import timm.layers

    return tuple(timm.layers.get_notrace_modules()), tuple(timm.layers.get_notrace_functions())


#: how many modules the tracer may keep whole, one per failed attempt, before it gives up (the
#: MobileNets of transformers compute TensorFlow-style padding in over 50 modules)
MAX_FALLBACK_LEAVES = 256


def trace(model: nn.Module, name: str) -> fx.GraphModule:
    """Symbolically trace ``model`` (in eval mode) into a GraphModule sharing its submodules.
    Modules and functions that timm marks as not traceable stay whole (leaves). Where a module's
    forward cannot be traced (it assigns into a tensor, or branches on a traced value), the
    trace starts again with that module whole, like a layer: its insides are then outside any
    rule, which suits trunk blocks; the head must still trace. ``gm.meta["kept_whole"]`` lists
    those modules. A root forward behind a decorator that takes ``**kwargs`` (Hugging Face's
    ``can_return_tuple``) is traced undecorated, with the image as its only argument."""
    was_training = model.training
    model.eval()
    leaves: set[str] = set()
    try:
        with _undecorated(model):
            while True:
                tracer = _Tracer(*_untraceable(), leaves)
                try:
                    graph = tracer.trace(model, concrete_args=_defaults(model))
                    break
                except Exception as exc:
                    failed = tracer.failed
                    if not failed or failed in leaves or len(leaves) >= MAX_FALLBACK_LEAVES:
                        raise _trace_failure(name, exc, failed) from exc
                    leaves.add(failed)
        gm = fx.GraphModule(model, graph, type(model).__name__)
        gm.meta["kept_whole"] = sorted(leaves)
        return gm
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _undecorated(model: nn.Module) -> Iterator[None]:
    """While tracing, give ``model`` a class whose forward is its own undecorated forward
    called with the image alone: a decorator's ``*args, **kwargs`` would otherwise become
    proxies that the decorator's Python cannot take apart."""
    cls = type(model)
    forward = inspect.unwrap(cls.forward)
    image = next(iter(list(inspect.signature(forward).parameters)[1:]), None)
    if forward is cls.forward or image is None:
        yield
        return

    def plain(self: nn.Module, x: torch.Tensor) -> Any:
        return forward(self, **{image: x})

    model.__class__ = type(cls.__name__, (cls,), {"forward": plain})
    try:
        yield
    finally:
        model.__class__ = cls


def _defaults(model: nn.Module) -> dict[str, Any]:
    """The forward's optional arguments after the image, held at their defaults (a ``mask=None``
    must not become an input that the trace assumes is given)."""
    parameters = list(inspect.signature(model.forward).parameters.values())[1:]
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _trace_failure(name: str, exc: Exception, failed: str | None) -> ForwardTraceError:
    where = f" in {failed}" if failed else ""
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    reason = f"torch.fx cannot trace the forward{where} ({type(exc).__name__}: {first_line})"
    return ForwardTraceError(
        f"{name}: {reason}. fc2conv needs a forward without data-dependent Python control flow; "
        "move such code into a submodule that torch.fx treats as a leaf, or branch on shapes "
        "known at trace time (fc2conv.export_model and the command line export such a model "
        "through torch.onnx).",
        reason,
    )


def meta_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Meta-device stand-ins for every parameter and buffer of ``module`` (no memory)."""
    named = [
        *module.named_parameters(remove_duplicate=False),
        *module.named_buffers(remove_duplicate=False),
    ]
    return {key: torch.empty_like(value, device="meta") for key, value in named}


def meta_run(module: nn.Module, state: dict[str, torch.Tensor], *shapes: tuple[int, ...]) -> Any:
    """Run ``module`` on meta tensors: shapes only, in microseconds per layer."""
    inputs = tuple(torch.empty(shape, device="meta") for shape in shapes)
    with torch.no_grad():
        return torch.func.functional_call(module, state, inputs, tie_weights=False, strict=False)


def fake_run(module: Callable[..., Any], *shapes: tuple[int, ...]) -> Any:
    """Run ``module`` on fake inputs of the given shapes: only shapes are computed. A failure
    is raised, not logged (the fake-tensor machinery logs each failing operator otherwise)."""
    logger = logging.getLogger("torch._subclasses.fake_tensor")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode, torch.no_grad():
            inputs = [mode.from_tensor(torch.empty(shape)) for shape in shapes]
            return module(*inputs)
    finally:
        logger.setLevel(level)


SHAPE_PRESERVING = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
)


class _ShapeOnly(fx.Interpreter):
    """Skips layers that keep their input's shape (batch norm on meta tensors is slow)."""

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        module = self.fetch_attr(target)
        if isinstance(module, SHAPE_PRESERVING) and args:
            return args[0]
        if isinstance(module, LinearConv2d):  # its matrix-product path is for real tensors
            return nn.Conv2d.forward(module, *args, **kwargs)
        return super().call_module(target, args, kwargs)


class _ShapeRecorder(_ShapeOnly):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.shapes: dict[fx.Node, tuple[int, ...]] = {}

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            self.shapes[n] = tuple(int(d) for d in result.shape)
        return result


class _Interpreting(nn.Module):
    """Owns ``gm`` (so functional_call can swap its tensors for meta ones) and runs it through an
    interpreter."""

    def __init__(self, interpreter: fx.Interpreter) -> None:
        super().__init__()
        self.gm = interpreter.module
        self.interpreter = interpreter

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.interpreter.run(*inputs)


class ShapeProbe:
    """Output of ``gm`` for any input shape, computed on meta tensors (shapes only)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.module = _Interpreting(_ShapeOnly(gm))
        self.state = meta_state(self.module)

    def __call__(self, *shapes: tuple[int, ...]) -> Any:
        return meta_run(self.module, self.state, *shapes)


def propagate_shapes(
    gm: fx.GraphModule,
    input_shape: tuple[int, ...],
    name: str,
    hint: str = "",
    *,
    fake_fallback: bool = True,
) -> dict:
    """Shape of every tensor-valued node when ``gm`` runs on an input of ``input_shape``.
    ``hint`` ends the error message when it does not run. Meta tensors first; fake tensors
    where the model holds constants that are not parameters or buffers (``fake_fallback``)."""
    recorder = _ShapeRecorder(gm)
    recording = _Interpreting(recorder)
    try:
        try:
            meta_run(recording, meta_state(recording), input_shape)
        except Exception:
            if not fake_fallback:
                raise
            recorder.shapes.clear()
            fake_run(recording, input_shape)
    except Exception as exc:
        size = "x".join(str(d) for d in input_shape[1:])
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        raise TraceError(
            f"{name}: the model does not run on a {size} input ({type(exc).__name__}: "
            f"{reason}). {hint or 'Pass its canonical input size with input_size=(height, width).'}"
        ) from exc
    return recorder.shapes


def shapes_until_failure(
    gm: fx.GraphModule, input_shape: tuple[int, ...]
) -> dict[fx.Node, tuple[int, ...]]:
    """Shape of every tensor-valued node that runs, on meta tensors, before ``gm`` fails on an
    input of ``input_shape`` (a classifier that flattens its map fails at its first Linear at
    any other size): all of them where it runs."""
    recorder = _ShapeRecorder(gm)
    recording = _Interpreting(recorder)
    with contextlib.suppress(Exception), contextlib.redirect_stderr(io.StringIO()):
        meta_run(recording, meta_state(recording), input_shape)
    return recorder.shapes


def output_leaves(output: Any) -> list[Any]:
    """The leaves of a model's output (tensors, or fx nodes of a graph's output), in order,
    through tuples, lists, namedtuples and dicts."""
    if isinstance(output, (tuple, list)):
        return [leaf for item in output for leaf in output_leaves(item)]
    if isinstance(output, dict):
        return [leaf for item in output.values() for leaf in output_leaves(item)]
    return [output]


def output_names(output: Any) -> list[str]:
    """A name for each leaf of ``output`` (see :func:`output_leaves`): "scores" for a single
    tensor, the keys of a dict (joined by dots when nested), else "output_0", "output_1", ..."""
    if not isinstance(output, (tuple, list, dict)):
        return ["scores"]

    def names(item: Any, prefix: str) -> list[str]:
        if isinstance(item, dict):
            return [n for key, value in item.items() for n in names(value, f"{prefix}{key}.")]
        if isinstance(item, (tuple, list)):
            return [n for i, value in enumerate(item) for n in names(value, f"{prefix}{i}.")]
        return [prefix.rstrip(".")]

    found = names(output, "")
    return [name if not name[0].isdigit() else f"output_{name}" for name in found]


def node_name(node: fx.Node) -> str:
    """A dotted layer name a user recognises, e.g. ``classifier.0`` or ``features.3 (mean)``."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    owner = next(reversed(stack.values()))[0] if stack else ""
    what = getattr(node.target, "__name__", str(node.target))
    return f"{owner}: {what}" if owner else f"forward: {what}"
