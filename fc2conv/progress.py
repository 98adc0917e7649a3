"""How long operations report what they are doing, without depending on a user interface.

Library functions take a :class:`Progress` and call ``with progress.step("converting") as say:``
around each long step, calling ``say("detail")`` inside it. The default is silent; the command
line shows spinners and timings; the export's child process forwards the same calls to its parent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["SILENT", "ConsoleProgress", "Progress"]


class Progress:
    """Receives the steps of a long operation; this base class ignores them."""

    @contextmanager
    def step(self, text: str) -> Iterator[Callable[[str], None]]:
        """A named step; the callable it yields reports details within the step."""
        yield lambda detail: None

    def line(self, text: str) -> None:
        """A result line (what was written, a summary)."""

    def warning(self, text: str) -> None:
        """Something the user should see although the operation goes on (an image that failed)."""


SILENT = Progress()


class ConsoleProgress(Progress):
    """Steps on stderr, with a spinner while they run and their time when done (rich);
    silent with ``quiet``. ``line`` prints a result line on stdout, ``warning`` a line on
    stderr."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.console = Console(stderr=True, highlight=False)

    @contextmanager
    def step(self, text: str) -> Iterator[Callable[[str], None]]:
        if self.quiet:
            yield lambda detail: None
            return
        start = time.perf_counter()
        with self.console.status(text) as status:
            yield lambda detail: status.update(detail)
        self.console.print(f"[green]✓[/] {text} ({time.perf_counter() - start:.1f} s)")

    def line(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def warning(self, text: str) -> None:
        """On stderr, also with ``quiet``."""
        import sys

        print(text, file=sys.stderr, flush=True)
