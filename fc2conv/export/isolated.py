"""The export pipeline, with PyTorch and the file checks in separate processes.

Exporting a large model costs memory three times over: PyTorch with the model, the exporter, and
then onnx.checker and onnxruntime loading the written file. Here they never share a process:

1. *stage*: PyTorch exports the converted model into a hidden staging folder beside the target,
   with the reference outputs to check against (:mod:`.torch_onnx`);
2. *check*: onnx.checker's full check and onnxruntime at three sizes, in a process that has not
   imported PyTorch (:func:`.onnx_file.check_file`);
3. *commit*: only then are the files renamed into place; on any error the staging folder goes.

:func:`export_model` runs step 1 in a child process (``python -m fc2conv.export.worker``) that
loads, converts and verifies the model itself, so the caller never holds PyTorch or the weights;
:func:`export_onnx` stages a model the caller already has, and checks it in a child process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import errors
from ..errors import ExportError, Fc2ConvError
from ..progress import SILENT, Progress
from .onnx_file import (
    CASES_FILE,
    SizeCheck,
    check_file,
    check_target,
    commit,
    data_path,
    staging_folder,
)

__all__ = ["ExportReport", "WorkerError", "export_model", "export_onnx"]

TWO_GB = 2 * 1024**3


@dataclass
class ExportReport:
    """What an export wrote and how it was checked. ``timings``: seconds per part."""

    path: Path
    bytes: int
    external_data: Path | None
    opset: int
    checks: list[SizeCheck] = field(default_factory=list)
    verified: str | None = None  #: the equivalence report against the original model
    geometry: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        size = f"{self.bytes / 1e6:.1f} MB"
        if self.external_data:
            size += f", weights in {self.external_data.name}"
        lines = [f"wrote {self.path} ({size})", f"geometry: {self.geometry}"]
        if self.verified is not None:
            lines.append(f"PyTorch: {self.verified}")
        lines += [
            f"onnxruntime at {c.height}x{c.width}: {c.map_size[0]}x{c.map_size[1]} map, "
            f"relative error {c.relative_error:.1e}"
            for c in self.checks
        ]
        return "\n".join(lines)


class WorkerError(ExportError):
    """The export's child process failed unexpectedly; ``details`` holds what it printed."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


# --- running the child process -----------------------------------------------------------------


def _no_detail(detail: str) -> None:
    """Where details go before the child's first step."""


def _drain(stream: IO[str], into: list[str]) -> None:
    into.extend(stream)


def run_worker(command: str, request: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Run ``python -m fc2conv.export.worker COMMAND`` with ``request`` and return its result.

    The child reports steps as JSON lines on its stdout, which are replayed into ``progress``;
    anything else it prints is kept and shown only when it fails. An error the child raises as
    an :class:`~fc2conv.errors.Fc2ConvError` is raised here as the same type.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "fc2conv.export.worker", command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin and process.stdout and process.stderr
    printed: list[str] = []
    drain = threading.Thread(target=_drain, args=(process.stderr, printed), daemon=True)
    drain.start()
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    steps = contextlib.ExitStack()  # the step the child is in, replayed into ``progress``
    say: Callable[[str], None] = _no_detail
    try:
        process.stdin.write(json.dumps(request))
        process.stdin.close()
        for line in process.stdout:
            event = json.loads(line)
            if "begin" in event:
                say = steps.enter_context(progress.step(event["begin"]))
            elif "detail" in event:
                say(event["detail"])
            elif "end" in event:
                steps.close()
            elif "result" in event:
                result = event["result"]
            elif "error" in event:
                error = event["error"]
        code = process.wait()
    except BaseException as exc:
        process.kill()
        process.wait()
        steps.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if error is not None or code or result is None:
        failed = ExportError("the step failed")
        steps.__exit__(ExportError, failed, None)  # a failed step is not reported as done
    else:
        steps.close()
    drain.join()
    details = "".join(printed)
    if error is not None:
        kind = getattr(errors, error["type"], None)
        if isinstance(kind, type) and issubclass(kind, Fc2ConvError):
            raise kind(error["message"])
        raise WorkerError(
            f"the export's PyTorch process failed: {error['message']}", error.get("traceback", "")
        )
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        raise WorkerError(f"the export's child process was killed by {name}{hint}", details)
    if code or result is None:
        last = details.strip().splitlines()[-1:] or ["no output"]
        raise WorkerError(f"the export's child process failed ({last[0][:300]})", details)
    return result


# --- the pipeline ------------------------------------------------------------------------------


@contextlib.contextmanager
def _staged(target: Path, force: bool) -> Iterator[Path]:
    """A staging folder beside ``target`` (checked writable first), removed at the end."""
    check_target(target, force)
    staging = staging_folder(target)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check(staged: Path, rtol: float, progress: Progress) -> tuple[list[SizeCheck], float]:
    """The file checks, in this process when it has not imported PyTorch, else in a child."""
    start = time.perf_counter()
    with progress.step("checking the written model") as say:
        if "torch" in sys.modules:
            request = {"staged": str(staged), "rtol": rtol}
            found = run_worker("check", request, SILENT)["checks"]
            for check in found:
                check["map_size"] = tuple(check["map_size"])
            checks = [SizeCheck(**check) for check in found]
        else:
            checks = check_file(staged, staged.parent / CASES_FILE, rtol, say)
    return checks, time.perf_counter() - start


def _check_and_commit(
    staged: Path,
    target: Path,
    opset: int,
    rtol: float | None,
    progress: Progress,
    timings: dict[str, float],
    **fields: Any,
) -> ExportReport:
    """Check the staged file (unless ``rtol`` is None), move it into place, and report."""
    checks: list[SizeCheck] = []
    if rtol is not None:
        checks, timings["checks"] = _check(staged, rtol, progress)
    external = data_path(staged).exists()
    commit(staged, target)
    weights = data_path(target) if external else None
    return ExportReport(
        target, target.stat().st_size, weights, opset, checks, timings=timings, **fields
    )


def export_model(
    source: str,
    path: str | os.PathLike,
    *,
    weights: str = "DEFAULT",
    input_size: tuple[int, int] | None = None,
    input_channels: int | None = None,
    num_classes: int | None = None,
    classes: list[str] | str | os.PathLike | None = None,
    mode: str = "window",
    stride: int | None = None,
    model_args: dict[str, Any] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    opset: int = 18,
    rtol: float = 1e-4,
    check: bool = True,
    force: bool = False,
    external_data_threshold: int = TWO_GB,
    progress: Progress = SILENT,
) -> ExportReport:
    """Load, convert, verify and export the model named ``source`` to ``path``, with the
    PyTorch part in a child process and the file checks in this one (when it has not imported
    PyTorch itself), so that the two never share memory. What ``fc2conv MODEL --out PATH``
    runs; the arguments are those of :func:`fc2conv.pipeline.prepare` and :func:`export_onnx`.
    """
    from ..sources import check_model_name

    check_model_name(source, exporting=True)
    target = Path(path)
    with _staged(target, force) as staging:
        request = {
            "source": source,
            "weights": weights,
            "input_size": list(input_size) if input_size else None,
            "input_channels": input_channels,
            "num_classes": num_classes,
            "classes": classes if classes is None or isinstance(classes, list) else str(classes),
            "mode": mode,
            "stride": stride,
            "model_args": model_args,
            "mean": mean,
            "std": std,
            "opset": opset,
            "rtol": rtol,
            "check": check,
            "staging": str(staging),
            "name": target.name,
            "external_data_threshold": external_data_threshold,
        }
        start = time.perf_counter()
        staged_info = run_worker("stage", request, progress)
        timings = {"PyTorch process": time.perf_counter() - start, **staged_info["timings"]}
        return _check_and_commit(
            staging / target.name,
            target,
            opset,
            rtol if check else None,
            progress,
            timings,
            verified=staged_info["verified"],
            geometry=staged_info["geometry"],
        )


def export_onnx(
    converted: Any,
    path: str | os.PathLike,
    *,
    opset: int = 18,
    rtol: float = 1e-4,
    check: bool = True,
    force: bool = False,
    batch: int = 2,
    external_data_threshold: int = TWO_GB,
    progress: Progress = SILENT,
) -> ExportReport:
    """Export a :class:`~fc2conv.FullyConvolutionalModel` to ``path`` with dynamic batch, height
    and width, and check it.

    Weights above ``external_data_threshold`` bytes go to ``<path>.data`` beside the model. The
    files appear at ``path`` only after every check passed (onnx.checker's full check, and
    onnxruntime at the canonical size and two larger ones against PyTorch, run in a child
    process without PyTorch); an existing file is replaced only with ``force``.
    """
    from .torch_onnx import stage

    target = Path(path)
    with _staged(target, force) as staging:
        start = time.perf_counter()
        with progress.step("exporting to ONNX") as say:
            staged = stage(
                converted,
                staging,
                target.name,
                opset=opset,
                batch=batch,
                external_data_threshold=external_data_threshold,
                cases=check,
                say=say,
            )
        timings = {"export": time.perf_counter() - start}
        return _check_and_commit(
            staged,
            target,
            opset,
            rtol if check else None,
            progress,
            timings,
            geometry=str(converted.geometry),
        )


def check_result(checks: list[SizeCheck]) -> dict[str, Any]:
    """The checks as the worker sends them back."""
    return {"checks": [asdict(check) for check in checks]}
