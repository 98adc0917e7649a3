"""What the commands share: option declarations and their parsing, and error handling."""

from __future__ import annotations

import functools
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import Fc2ConvError, RunInterrupted, UsageError
from ..progress import ConsoleProgress as Reporter
from ..run.outputs import interrupt_on_sigterm

__all__ = [
    "POSITIVE",
    "Reporter",
    "file_option",
    "handles_errors",
    "model_options",
    "number_option",
    "preprocessing_options",
    "quiet_option",
    "scales_option",
    "together",
]


def _size(ctx: click.Context | None, param: object, text: str | None) -> tuple[int, int] | None:
    found = re.fullmatch(r"([1-9]\d*)(?:[x,]([1-9]\d*))?", (text or "").lower())
    if text is not None and not found:
        raise click.BadParameter(f"'{text}' is not a size like 224 or 224x224")
    return (int(found[1]), int(found[2] or found[1])) if found else None


def scales_option(step: str, cam: str = "") -> Callable[[Callable[..., None]], Callable[..., None]]:
    return click.option(
        "--scales",
        callback=_scales,
        metavar="S1,S2,...",
        help=f"Image pyramid scales [default: from 2 down to the image as one window, in steps "
        f"of {step}{cam}].",
    )


def _scales(ctx: click.Context | None, param: object, text: str | None) -> tuple[float, ...] | None:
    scales = _floats(text)
    if scales is not None and (not scales or not all(0 < s < float("inf") for s in scales)):
        raise click.BadParameter(f"'{text}' is not a list of positive numbers like 1.0,0.8")
    return tuple(scales) if scales is not None else None


def _floats(text: str | None) -> list[float] | None:
    """Comma-separated numbers (None for no text, [] for text that is not such a list)."""
    try:
        return [float(value) for value in text.split(",")] if text else None
    except ValueError:
        return []


def handles_errors(command: Callable[..., None]) -> Callable[..., None]:
    """A problem the user can fix is one line on stderr and exit code 1 (tracebacks: --debug);
    an OSError while writing (a full disk) is one too. SIGTERM is handled as Ctrl-C."""

    @functools.wraps(command)
    def run(*args: Any, debug: bool, **kwargs: Any) -> None:
        previous = interrupt_on_sigterm()  # kill, timeout: as Ctrl-C
        try:
            command(*args, **kwargs)
        except UsageError as exc:
            raise click.UsageError(str(exc)) from None
        except Fc2ConvError as exc:
            if debug:
                click.echo(getattr(exc, "details", ""), err=True, nl=False)
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:  # a full disk, a folder that turned read-only
            if debug:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            sys.exit(1)
        except RunInterrupted:  # it said what it kept
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("interrupted; nothing was written", err=True)
            sys.exit(130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return click.option("--debug", is_flag=True, help="Show tracebacks.")(run)


def _model_args(
    ctx: click.Context | None, param: object, pairs: tuple[str, ...]
) -> dict[str, Any] | None:
    from ..sources.imports import parse_model_args

    try:
        return parse_model_args(pairs) or None
    except Fc2ConvError as exc:
        raise click.BadParameter(str(exc).removeprefix("--model-arg ")) from exc


def _numbers(ctx: click.Context | None, param: Any, text: str | None) -> list[float] | None:
    values = _floats(text)
    if values is not None and not values:
        raise click.BadParameter(f"'{text}' is not a list of numbers like 0.485,0.456,0.406")
    if param.name == "std" and values is not None and not all(value > 0 for value in values):
        raise click.BadParameter(f"'{text}': each std divides its channel, so it must be > 0")
    return values


def together(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One decorator for several options, listed in the order they are shown."""

    def decorate(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def file_option(name: str, help: str, **settings: Any) -> Callable[[Any], Any]:
    """An option that names a file to write."""
    path = click.Path(dir_okay=False, path_type=Path)
    return click.option(name, type=path, help=help, **settings)


#: a number above zero (--rtol, --every, --fps)
POSITIVE = click.FloatRange(0, None, min_open=True)


def number_option(name: str, help: str, **settings: Any) -> Callable[[Any], Any]:
    """An option that takes a whole number of at least one."""
    return click.option(name, type=click.IntRange(1, None), help=help, **settings)


#: --weights, --input-size, --input-channels, --mode: how a model name is converted.
model_options = together(
    click.option(
        "--weights",
        default="DEFAULT",
        metavar="DEFAULT|none|PATH",
        help="DEFAULT: torchvision's pretrained weights (torch hub cache); none: random; "
        "PATH: a state-dict file (.pth, .pt, .safetensors).",
    ),
    click.option(
        "--input-size",
        metavar="HxW",
        callback=_size,
        help="Canonical input size of the classifier [default: the model's own].",
    ),
    number_option("--input-channels", "Channels of the input images [default: from the model]."),
    number_option("--num-classes", "Classes of your weights."),
    click.option("--classes", type=click.Path(exists=True), help="File: a class name a line."),
    click.option(
        "--mode",
        type=click.Choice(["window", "cam"]),
        default="window",
        help="window: a cell per canonical-size window; cam: class-activation map (localises best).",
    ),
    number_option(
        "--stride", "A finer output stride, e.g. 16 or 8 for a stride-32 model (exact, à trous)."
    ),
    click.option(
        "--model-arg",
        "model_args",
        multiple=True,
        metavar="KEY=VALUE",
        callback=_model_args,
        help="Your own code's factory (MODULE:FACTORY): an argument (repeatable).",
    ),
)

#: --mean, --std, --bgr: the preprocessing an ONNX classifier's file does not record.
preprocessing_options = together(
    *(
        click.option(
            f"--{name}",
            callback=_numbers,
            metavar="C1,C2,C3",
            help=f"ONNX classifiers: per-channel {name} for images in [0, 1], in the model's "
            f"channel order [default: {default}].",
        )
        for name, default in (("mean", 0), ("std", 1))
    ),
    click.option(
        "--imagenet",
        is_flag=True,
        help="ONNX classifiers and your own code: ImageNet's mean and std (instead of "
        "--mean/--std).",
    ),
    click.option("--bgr", is_flag=True, help="ONNX classifiers: it takes BGR (Caffe)."),
    click.option(
        "--output",
        "class_output",
        metavar="NAME|INDEX",
        help="ONNX classifiers with several outputs: the one that holds the class scores.",
    ),
)

quiet_option = click.option("--quiet", is_flag=True, help="Print nothing but errors.")
