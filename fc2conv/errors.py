"""The errors fc2conv raises. Every one is an :class:`Fc2ConvError`, so callers can catch one type."""

from __future__ import annotations


class Fc2ConvError(Exception):
    """Base class: something a user can act on went wrong."""


class TraceError(Fc2ConvError):
    """torch.fx could not trace the model."""


class ForwardTraceError(TraceError):
    """torch.fx cannot trace a forward that no module boundary can keep whole (the classifier's
    own, say): the export can still take the model through torch.onnx and the ONNX rules.
    ``reason`` is the failure alone, without the model's name and the advice."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class UnsupportedModelError(Fc2ConvError):
    """The model cannot be converted exactly; the message lists every layer in the way and why."""

    def __init__(self, message: str, reasons: list[tuple[str, str]] | None = None) -> None:
        self.reasons = list(reasons or [])
        if self.reasons:
            lines = "\n".join(f"  - {layer}: {why}" for layer, why in self.reasons)
            message = f"{message}\n{lines}"
        super().__init__(message)


class EquivalenceError(Fc2ConvError):
    """The converted model's output differs from the original's."""

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report


class InputSizeError(Fc2ConvError, ValueError):
    """An input is smaller than one heatmap cell's window."""


class ModelLoadError(Fc2ConvError):
    """A model name, weights file or pretrained download could not be used."""


class ExportError(Fc2ConvError):
    """ONNX export or its checks failed; nothing was left at the output path."""


class UsageError(Fc2ConvError):
    """Arguments that do not go together (one image with folder outputs, say); the command line
    exits with code 2 for it, as for any wrong argument."""


class RunInterrupted(KeyboardInterrupt):
    """A run over many images was interrupted (Ctrl-C, SIGTERM) after it said so, and its JSON
    Lines file keeps what finished."""
