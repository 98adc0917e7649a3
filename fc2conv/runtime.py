"""The way fc2conv opens an exported model, without PyTorch: onnxruntime (CPU), or OpenVINO's CPU
plugin where it is installed (the only way to run in bf16)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .errors import Fc2ConvError

__all__ = ["RUNTIMES", "OpenVinoSession", "check_runtime", "open_runtime", "open_session"]


def open_session(
    path: str | os.PathLike | bytes,
    *,
    optimization: str = "all",
    memory_arena: bool = True,
    threads: int | None = None,
) -> Any:
    """An onnxruntime CPU session for ``path`` (or a serialized model), logging fatal errors only
    (a failing run raises its error, which the caller reports in one line).

    ``optimization="all"`` (for running) includes the NCHWc layout rewrite, which is the fastest
    for convolutions but holds a re-laid-out copy of every convolution weight; ``"extended"``
    (for checking a file once) skips it and so needs about half the memory for large models.
    ``memory_arena=False`` frees each run's activations at its end, so that runs at several
    sizes do not keep the largest one's memory. ``threads`` sets intra-op threads (default:
    onnxruntime's choice, one per core).
    """
    import onnxruntime as ort

    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    }
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = levels[optimization]
    options.enable_cpu_mem_arena = memory_arena
    if threads is not None:
        options.intra_op_num_threads = threads
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


#: the runtimes a converted model can run in, and the precisions each computes in
RUNTIMES = {"onnxruntime": ("fp32",), "openvino": ("fp32", "bf16")}

OPENVINO_INSTALL = "pip install 'fc2conv[openvino]'"


def check_runtime(runtime: str, precision: str) -> None:
    """Refuse a runtime or a precision that fc2conv does not run (before any model is read)."""
    if runtime not in RUNTIMES:
        raise Fc2ConvError(f"unknown runtime '{runtime}'; choose one of {', '.join(RUNTIMES)}")
    if precision not in RUNTIMES[runtime]:
        runs = [name for name, precisions in RUNTIMES.items() if precision in precisions]
        hint = f": use --runtime {runs[0]}" if runs else ""
        raise Fc2ConvError(f"{runtime} does not run {precision}{hint}")


def open_runtime(
    path: str | os.PathLike,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
    threads: int | None = None,
) -> Any:
    """A session for running a converted model over many image sizes: onnxruntime without its
    memory arena, or OpenVINO's CPU plugin (fp32, or bf16 where the CPU computes it). Both
    answer ``get_inputs()``, ``get_outputs()`` and ``run(None, feeds)``."""
    check_runtime(runtime, precision)
    if runtime == "openvino":
        return OpenVinoSession(path, precision, threads)
    return open_session(path, memory_arena=False, threads=threads)  # many sizes: no arena


@dataclass(frozen=True)
class _Value:
    name: str
    shape: list[int | str]


class OpenVinoSession:
    """A model compiled by OpenVINO for the CPU, behind the part of onnxruntime's session API
    that fc2conv's runner uses. The precision is set explicitly: OpenVINO would otherwise pick
    bf16 by itself on CPUs that have it, and silently keep fp32 on CPUs that do not."""

    def __init__(self, path: str | os.PathLike, precision: str, threads: int | None) -> None:
        try:
            import openvino
        except ImportError as exc:
            raise Fc2ConvError(
                f"the OpenVINO runtime needs the openvino package: {OPENVINO_INSTALL}"
            ) from exc
        core = openvino.Core()
        if precision == "bf16":
            capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
            if "BF16" not in capabilities:
                raise Fc2ConvError(
                    "this CPU has no bf16 arithmetic (OpenVINO finds "
                    f"{', '.join(capabilities)}; bf16 needs AVX512-BF16 or AMX): drop "
                    "--precision bf16 to run in fp32"
                )
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision],
        }
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        computed = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.precision = {"f32": "fp32"}.get(computed, computed)  #: what it computes in

    def _values(self, ports: Any) -> list[_Value]:
        return [
            _Value(
                port.get_any_name(),
                [dim.get_length() if dim.is_static else "?" for dim in port.get_partial_shape()],
            )
            for port in ports
        ]

    def get_inputs(self) -> list[_Value]:
        return self._values(self.compiled.inputs)

    def get_outputs(self) -> list[_Value]:
        return self._values(self.compiled.outputs)

    def run(self, names: Any, feeds: dict[str, Any]) -> list[Any]:
        """Every output for ``feeds`` (``names`` must be None, as the runner passes it)."""
        assert names is None
        results = self.request.infer(feeds)
        # copies: the request reuses its output buffers on the next run
        return [results[port].copy() for port in self.compiled.outputs]
