"""The export's child process: ``python -m fc2conv.export.worker MODULE:FUNCTION`` (see
:mod:`.isolated`) calls that function with the request and this module's progress: the
pipeline's ``fc2conv.pipeline.export:stage`` (load, convert, verify, export) or this module's
``check`` (the file checks, for a parent that has imported PyTorch).

The request comes as JSON on stdin. Steps, the result and any error go to the parent as JSON
lines on the process's original stdout; everything else written to stdout or stderr (by
PyTorch, the exporter, warnings) goes to stderr, which the parent shows only on failure.
"""

from __future__ import annotations

import importlib
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
        try:
            yield say
        except BaseException:
            self.send(failed=text)  # the parent ends the step without reporting it done
            raise
        close_detail()
        self.timings[text] = time.perf_counter() - start
        self.send(end=text)


def check(request: dict[str, Any], progress: EventProgress) -> dict[str, Any]:
    """The file checks, for a parent that has imported PyTorch itself."""
    from .isolated import check_result
    from .onnx_file import CASES_FILE, check_file

    staged = Path(request["staged"])
    return check_result(check_file(staged, staged.parent / CASES_FILE, request["rtol"]))


def command(name: str) -> Callable[[dict[str, Any], EventProgress], dict[str, Any]]:
    """The function ``module:function`` names (an fc2conv module's)."""
    module, _, function = name.partition(":")
    if not module.startswith("fc2conv.") or not function:
        raise Fc2ConvError(f"the export's child process runs fc2conv functions, not {name!r}")
    return getattr(importlib.import_module(module), function)


def main() -> None:
    events = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # from here on, stray output (Python or C) goes to stderr
    sys.stdout = sys.stderr
    progress = EventProgress(events)
    code = 0
    try:
        request = json.load(sys.stdin)
        progress.send(result=command(sys.argv[1])(request, progress))
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
