"""What the benchmark scripts share: the machine they measure on, timers, peak memory, number
formatting and onnxruntime sessions.

A script imports it as ``common``: its own folder is on sys.path when it runs as ``python
benchmarks/NAME.py``. Nothing here imports torch or onnxruntime before it is called.
"""

from __future__ import annotations

import importlib
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fc2conv.runtime import open_session

#: the repository's root (docs/, tests/)
ROOT = Path(__file__).resolve().parents[1]

#: the CPU flags the "measured with" line names when the CPU has them ("amx": any amx_* flag)
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx")

#: the versions run.py and run_path.py name in their "measured with" line
VERSIONS = ("torch", "torchvision", "onnxruntime", "python")

#: how the "measured with" line names a package (by default its module name)
LABELS = {"python": "Python", "ray": "Ray", "openvino": "OpenVINO", "av": "PyAV"}


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo; else what Python knows of the processor)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str]:
    """Every flag of the CPU in /proc/cpuinfo (none where it cannot be read)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def version(package: str) -> str:
    """``package`` and its version, as the "measured with" line says it; torch with its threads,
    "python" for Python itself."""
    if package == "python":
        return f"Python {platform.python_version()}"
    module = importlib.import_module(package)
    text = f"{LABELS.get(package, package)} {module.__version__}"
    if package == "torch":
        text += f" ({module.get_num_threads()} threads)"
    return text


def machine(*packages: str) -> str:
    """The "measured with" line: the CPU, which of :data:`FLAGS` it has, its cores, and the
    versions of ``packages`` (module names, see :func:`version`)."""
    flags = cpu_flags()
    has = [
        flag
        for flag in FLAGS
        if flag in flags or (flag == "amx" and any(f.startswith("amx") for f in flags))
    ]
    named = " ".join(has) or f"none of {', '.join(FLAGS)}"
    return ", ".join(
        [f"{cpu_name()} (flags: {named})", f"{os.cpu_count()} cores", *map(version, packages)]
    )


def calls_per_sample(function: Callable[[], object]) -> int:
    """Warm up, and repeat short functions so one sample lasts about 50 ms (like timeit)."""
    start = time.perf_counter()
    function()
    return max(1, round(0.05 / max(time.perf_counter() - start, 1e-6)))


def sample(function: Callable[[], object], calls: int) -> float:
    """Seconds per call of ``calls`` calls of ``function`` in a row."""
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def times(function: Callable[[], object], repeats: int) -> list[float]:
    """``repeats`` samples (seconds per call) after a warm-up; see :func:`calls_per_sample`."""
    calls = calls_per_sample(function)
    return [sample(function, calls) for _ in range(repeats)]


def paired_times(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[list[float], list[float]]:
    """Time two functions alternately, so that both see the same machine load."""
    first_calls, second_calls = calls_per_sample(first), calls_per_sample(second)
    a, b = [], []
    for _ in range(repeats):
        a.append(sample(first, first_calls))
        b.append(sample(second, second_calls))
    return a, b


def median_time(call: Callable[[], object], repeats: int) -> float:
    """The median of ``repeats`` single calls (seconds), after one call to warm up."""
    call()
    return statistics.median(sample(call, 1) for _ in range(repeats))


def fmt(samples: list[float], unit: float = 1e3, suffix: str = " ms", digits: int = 1) -> str:
    """The median of ``samples`` times ``unit``, with min–max in brackets."""
    low, median, high = (x * unit for x in (min(samples), statistics.median(samples), max(samples)))
    return f"{median:.{digits}f}{suffix} ({low:.{digits}f}–{high:.{digits}f})"


def ort_session(
    path: str | os.PathLike | bytes,
    level: str = "all",
    threads: int | None = None,
    arena: bool = True,
) -> Any:
    """fc2conv's onnxruntime session (``fc2conv.runtime.open_session``) for a file or a
    serialized model, with an optimisation level, intra-op threads (0 or None: onnxruntime's
    choice) and the memory arena on or off."""
    return open_session(path, optimization=level, memory_arena=arena, threads=threads or None)


GNU_TIME = Path("/usr/bin/time")


def peak_rss(
    command: list[str],
    folder: Path,
    env: dict[str, str] | None = None,
    watch: Callable[[int], None] | None = None,
) -> tuple[float, int, int]:
    """Wall time, peak RSS as GNU time reports it (the largest of the command's processes), and
    the peak of the RSS of all its processes together, sampled every 10 ms (bytes); ``watch``
    is called with each sample.

    A child forked straight from this large process would report this process's resident size
    in its own ru_maxrss; GNU time forks from its own small process instead.
    """
    report = folder / "time.txt"
    start = time.perf_counter()
    process = subprocess.Popen([str(GNU_TIME), "-f", "%M", "-o", str(report), *command], env=env)
    together = 0
    while process.poll() is None:
        resident = tree_rss(process.pid)
        together = max(together, resident)
        if watch is not None:
            watch(resident)
        time.sleep(0.01)
    wall = time.perf_counter() - start
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return wall, int(report.read_text().split()[-1]) * 1024, together  # GNU time: KiB


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf(
                "SC_PAGE_SIZE"
            )
        except OSError:
            continue
    return total


def matmul_peak(repeats: int) -> dict[str, float]:
    """GFLOP/s of a 4096x4096 float32 matrix product, in onnxruntime (MLAS, the library that
    runs the models' convolutions) and in NumPy."""
    import numpy as np
    from onnx import TensorProto, helper

    n = 4096
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort_session(model.SerializeToString())
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    flops = 2 * n**3
    runtime = median_time(lambda: session.run(None, {"a": a, "b": a}), repeats)
    numpy = median_time(lambda: a @ a, repeats)
    return {"onnxruntime": flops / runtime / 1e9, "numpy": flops / numpy / 1e9}


def conv_flops(path: Path, size: tuple[int, int]) -> float:
    """Multiply-adds x2 of every Conv of the model at an input of ``size`` (height, width),
    batch 1, from shape inference (grouped and depthwise convolutions counted as such)."""
    import numpy as np
    import onnx

    from fc2conv.onnx_in.graph import skeleton, static_shapes

    model = onnx.load(str(path), load_external_data=False)
    name = model.graph.input[0].name
    channels = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value or 3
    shapes = static_shapes(skeleton(model), name, [1, channels, *size], strict=False)
    total = 0.0
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight = shapes[node.input[1]]
            total += 2 * np.prod(shapes[node.output[0]]) * np.prod(weight[1:])
    return total
