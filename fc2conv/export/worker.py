"""The export's child process: ``python -m fc2conv.export.worker stage|check`` (see
:mod:`.isolated`).

The request comes as JSON on stdin. Steps, the result and any error go to the parent as JSON
lines on the process's original stdout; everything else written to stdout or stderr (by
PyTorch, the exporter, warnings) goes to stderr, which the parent shows only on failure.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import Fc2ConvError
from ..progress import Progress


class EventProgress(Progress):
    """Forwards steps to the parent as JSON lines, and times them and their details."""

    def __init__(self, events: IO[str]) -> None:
        self.events = events
        self.timings: dict[str, float] = {}

    def send(self, **event: Any) -> None:
        self.events.write(json.dumps(event) + "\n")
        self.events.flush()

    @contextmanager
    def step(self, text: str) -> Iterator[Callable[[str], None]]:
        start = time.perf_counter()
        current: list[tuple[str, float]] = []  # the detail in progress and when it began

        def close_detail() -> None:
            if current:
                detail, began = current.pop()
                self.timings[f"{text}: {detail}"] = time.perf_counter() - began

        def say(detail: str) -> None:
            close_detail()
            current.append((detail, time.perf_counter()))
            self.send(detail=detail)

        self.send(begin=text)
        yield say
        close_detail()
        self.timings[text] = time.perf_counter() - start
        self.send(end=text)


def stage(request: dict[str, Any], progress: EventProgress) -> dict[str, Any]:
    """Load, convert, verify and stage the model: the PyTorch part of the export."""
    start = time.perf_counter()
    from ..equivalence import verify
    from ..pipeline import prepare
    from .torch_onnx import stage as stage_onnx

    progress.timings["imports"] = time.perf_counter() - start
    size = tuple(request["input_size"]) if request["input_size"] else None
    prepared = prepare(
        request["source"],
        request["weights"],
        input_size=size,
        input_channels=request.get("input_channels"),
        num_classes=request.get("num_classes"),
        classes=request.get("classes"),
        mode=request["mode"],
        stride=request.get("stride"),
        model_args=request.get("model_args"),
        mean=request.get("mean"),
        std=request.get("std"),
        progress=progress,
    )
    verified = None
    if request["check"]:
        with progress.step("verifying against the original model"):
            verified = verify(prepared.loaded.model, prepared.converted, rtol=request["rtol"])
    with progress.step("exporting to ONNX") as say:
        stage_onnx(
            prepared.converted,
            Path(request["staging"]),
            request["name"],
            opset=request["opset"],
            external_data_threshold=request["external_data_threshold"],
            cases=request["check"],
            say=say,
        )
    return {
        "verified": None if verified is None else str(verified),
        "geometry": str(prepared.converted.geometry),
        "timings": progress.timings,
    }


def check(request: dict[str, Any], progress: EventProgress) -> dict[str, Any]:
    """The file checks, for a parent that has imported PyTorch itself."""
    from .isolated import check_result
    from .onnx_file import CASES_FILE, check_file

    staged = Path(request["staged"])
    return check_result(check_file(staged, staged.parent / CASES_FILE, request["rtol"]))


COMMANDS = {"stage": stage, "check": check}


def main() -> None:
    events = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # from here on, stray output (Python or C) goes to stderr
    sys.stdout = sys.stderr
    progress = EventProgress(events)
    code = 0
    try:
        request = json.load(sys.stdin)
        progress.send(result=COMMANDS[sys.argv[1]](request, progress))
    except Fc2ConvError as exc:
        progress.send(error={"type": type(exc).__name__, "message": str(exc)})
        code = 1
    except KeyboardInterrupt:
        code = 130
    except BaseException as exc:
        detail = "".join(traceback.format_exception(exc))
        sys.stderr.write(detail)
        message = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        progress.send(error={"type": "crash", "message": message, "traceback": detail})
        code = 1
    # Like multiprocessing's workers, end without Python's teardown: unloading torch touches
    # about 0.1 GB of library pages, which would be this process's peak for nothing.
    events.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
