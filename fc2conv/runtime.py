"""The one way fc2conv opens an exported model in onnxruntime (CPU), without PyTorch."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["open_session"]


def open_session(
    path: str | os.PathLike | bytes,
    *,
    optimization: str = "all",
    memory_arena: bool = True,
    threads: int | None = None,
) -> Any:
    """An onnxruntime CPU session for ``path`` (or a serialized model), logging errors only.

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
    options.log_severity_level = 3  # errors only
    options.graph_optimization_level = levels[optimization]
    options.enable_cpu_mem_arena = memory_arena
    if threads is not None:
        options.intra_op_num_threads = threads
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
