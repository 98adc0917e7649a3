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
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import errors
from ..errors import ExportError, Fc2ConvError
from ..progress import SILENT, Progress
from .onnx_file import CASES_FILE, TWO_GB, SizeCheck, check_file, data_path, staged

__all__ = ["ExportReport", "WorkerError", "check_staged", "export_onnx", "report_of", "run_worker"]


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
    notes: list[str] = field(default_factory=list)  #: what the user should know about the file

    def __str__(self) -> str:
        size = f"{self.bytes / 1e6:.1f} MB"
        if self.external_data:
            size += f", weights in {self.external_data.name}"
        lines = [f"wrote {self.path} ({size})", f"geometry: {self.geometry}"]
        if self.verified is not None:
            lines.append(f"PyTorch: {self.verified}")
        for c in self.checks:
            line = f"onnxruntime at {c.height}x{c.width}: {c.map_size[0]}x{c.map_size[1]} map"
            if c.relative_error is not None:
                line += f", relative error {c.relative_error:.1e}"
            lines.append(line)
        lines += [f"note: {note}" for note in self.notes]
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
    """Run ``python -m fc2conv.export.worker COMMAND`` with ``request`` and return its result;
    ``COMMAND`` names the function the child calls, as ``module:function`` (e.g.
    ``fc2conv.pipeline.export:stage``).

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
            elif "failed" in event:  # a step that failed in a way the child recovers from
                steps.__exit__(ExportError, ExportError(event["failed"]), None)
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


def check_staged(
    path: Path, rtol: float, progress: Progress, timings: dict[str, float]
) -> list[SizeCheck]:
    """The file checks, in this process when it has not imported PyTorch, else in a child
    (their time into ``timings``)."""
    start = time.perf_counter()
    with progress.step("checking the written model") as say:
        if "torch" in sys.modules:
            request = {"staged": str(path), "rtol": rtol}
            found = run_worker("fc2conv.export.worker:check", request, SILENT)["checks"]
            checks = [SizeCheck.from_json(check) for check in found]
        else:
            checks = check_file(path, path.parent / CASES_FILE, rtol, say)
    timings["checks"] = time.perf_counter() - start
    return checks


def report_of(
    target: Path, opset: int, checks: list[SizeCheck], timings: dict[str, float], **fields: Any
) -> ExportReport:
    """What was written at ``target`` (moved into place) and how it was checked."""
    weights = data_path(target)
    return ExportReport(
        target,
        target.stat().st_size,
        weights if weights.exists() else None,
        opset,
        checks,
        timings=timings,
        **fields,
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
    with staged(target, force) as staging:
        start = time.perf_counter()
        with progress.step("exporting to ONNX") as say:
            written = stage(
                converted,
                staging.parent,
                staging.name,
                opset=opset,
                batch=batch,
                external_data_threshold=external_data_threshold,
                cases=check,
                say=say,
            )
        timings = {"export": time.perf_counter() - start}
        checks = check_staged(written, rtol, progress, timings) if check else []
    from .onnx_file import UNKNOWN_PREPROCESSING, preprocessing_known

    notes = [] if preprocessing_known(converted.metadata) else [UNKNOWN_PREPROCESSING]
    return report_of(target, opset, checks, timings, geometry=str(converted.geometry), notes=notes)


def check_result(checks: list[SizeCheck]) -> dict[str, Any]:
    """The checks as the worker sends them back."""
    return {"checks": [asdict(check) for check in checks]}
