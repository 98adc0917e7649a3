"""Writing a run's outputs: checked before the model runs, put in place only when complete; and
SIGTERM handled as Ctrl-C, so that a killed run cleans up as an interrupted one does."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import Fc2ConvError

__all__ = ["check_output", "interrupt_on_sigterm", "output_files"]


def check_output(path: Path, force: bool, kind: str = "file") -> None:
    """Refuse, before any work, an output that cannot be written or would replace a file
    without ``--force``."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise Fc2ConvError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise Fc2ConvError(f"cannot write {path}: folder {folder} is not writable")
    if path.is_dir():
        raise Fc2ConvError(f"cannot write {path}: it is a folder; name a {kind}")
    if path.exists() and not force:
        raise Fc2ConvError(f"{path} exists; pass --force to replace it")
    try:  # the real test (``os.access`` says yes to root, also in /proc)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise Fc2ConvError(
            f"cannot write {path}: folder {folder} does not take files ({exc.strerror or exc})"
        ) from exc


@contextmanager
def output_files(paths: list[Path]) -> Iterator[list[Path]]:
    """Temporary names next to ``paths`` (same suffix) to write into; they replace ``paths``
    only when the block ends without an error, else they are removed: all outputs or none."""
    partial = [path.with_name(f".{path.stem}.partial{path.suffix}") for path in paths]
    try:
        yield partial
        for temporary, path in zip(partial, paths, strict=True):
            os.replace(temporary, path)
    finally:
        for temporary in partial:
            temporary.unlink(missing_ok=True)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM ends a command as Ctrl-C does: partial files and child processes are removed."""
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> Any:
    """Handle SIGTERM as Ctrl-C from now on (main thread only); the handler it replaces."""
    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, _interrupt)
    return None
