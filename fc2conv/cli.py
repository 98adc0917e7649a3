"""The ``fc2conv`` command: parse, call the Python API, print."""

from __future__ import annotations

import difflib
import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import Fc2ConvError
from .progress import ConsoleProgress as Reporter


class ModelFirstGroup(click.Group):
    """``fc2conv MODEL --out PATH`` runs ``export``; other first words are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = args[0] if args else None
        if first and first not in self.commands and not first.startswith("-"):
            from .sources import known_names

            close = difflib.get_close_matches(first, list(self.commands), n=1, cutoff=0.75)
            if close and first not in known_names() and not Path(first).exists():
                ctx.fail(f"no such command '{first}'; did you mean {close[0]}?")
            args = ["export", *args]
        return super().parse_args(ctx, args)


class ExportCommand(click.Command):
    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage("fc2conv", "MODEL --out PATH [OPTIONS]")


def _size(ctx: click.Context | None, param: object, text: str | None) -> tuple[int, int] | None:
    found = re.fullmatch(r"([1-9]\d*)(?:[x,]([1-9]\d*))?", (text or "").lower())
    if text is not None and not found:
        raise click.BadParameter(f"'{text}' is not a size like 224 or 224x224")
    return (int(found[1]), int(found[2] or found[1])) if found else None


def _scales(ctx: click.Context | None, param: object, text: str | None) -> tuple[float, ...] | None:
    try:
        return tuple(float(s) for s in text.split(",")) if text else None
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a list of numbers like 1.0,0.8") from None


def handles_errors(command: Callable[..., None]) -> Callable[..., None]:
    """A problem the user can fix is one line on stderr and exit code 1 (tracebacks: --debug)."""

    @functools.wraps(command)
    def run(*args: Any, debug: bool, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except Fc2ConvError as exc:
            if debug:
                click.echo(getattr(exc, "details", ""), err=True, nl=False)
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; nothing was written", err=True)
            sys.exit(130)

    return click.option("--debug", is_flag=True, help="Show tracebacks.")(run)


def model_options(command: Callable[..., None]) -> Callable[..., None]:
    """--weights, --input-size, --input-channels, --mode: how a model name is converted."""
    options = [
        click.option(
            "--weights",
            default="DEFAULT",
            show_default=True,
            metavar="DEFAULT|none|PATH",
            help="DEFAULT: torchvision's pretrained weights (torch hub cache); none: random; "
            "PATH: a state-dict file (.pth, .pt, .safetensors).",
        ),
        click.option(
            "--input-size",
            default=None,
            metavar="HxW",
            callback=_size,
            help="Canonical input size of the classifier [default: the model's own].",
        ),
        click.option(
            "--input-channels",
            type=click.IntRange(1, None),
            default=None,
            help="Channels of the input images [default: from the model].",
        ),
        click.option(
            "--num-classes", type=click.IntRange(1, None), help="Classes of your weights."
        ),
        click.option("--classes", type=click.Path(exists=True), help="File: a class name a line."),
        click.option(
            "--mode",
            type=click.Choice(["window", "cam"]),
            default="window",
            show_default=True,
            help="window: one cell per canonical-size window; cam: class-activation map.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


quiet_option = click.option("--quiet", is_flag=True, help="Print nothing but errors.")
image_argument = click.argument("image", type=click.Path(exists=True, dir_okay=False))
output_option = click.option(
    "--output", "output", default=None, help="Output with the class scores (index or name)."
)
picture_option = click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The PNG."
)


@click.group(cls=ModelFirstGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fc2conv")
def main() -> None:
    """Turn an image classifier into a fully convolutional network and export it to ONNX:
    `fc2conv MODEL --out PATH` (export); the other commands list, inspect and run models."""


@main.command(cls=ExportCommand)
@click.argument("model")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@model_options
@click.option("--opset", default=18, show_default=True, type=click.IntRange(18, None))
@click.option("--rtol", default=1e-4, show_default=True, help="Relative error allowed.")
@click.option("--no-verify", is_flag=True, help="Skip the equivalence and onnxruntime checks.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@quiet_option
@handles_errors
def export(model: str, out: Path, quiet: bool, no_verify: bool, **options: Any) -> None:
    """Convert MODEL and write a dynamic-size ONNX model to --out.

    The PyTorch part (loading, converting, verifying, exporting) runs in a child process; the
    written file is checked here once that process has ended.
    """
    from .export import export_model
    from .export.onnx_file import looks_like_onnx

    if Path(model).is_file() and looks_like_onnx(model):
        raise Fc2ConvError(f"{model}: converting ONNX classifiers is not supported yet")
    report = Reporter(quiet)
    report.line(str(export_model(model, out, check=not no_verify, progress=report, **options)))


@main.command("list")
def list_models() -> None:
    """The models fc2conv converts, their input size, and whether their weights are here."""
    from .sources import model_entries

    click.echo(f"{'model':<22} {'input':>9}  pretrained weights")
    for entry in model_entries():
        size = f"{entry.input_size[0]}x{entry.input_size[1]}"
        cached = "cached" if entry.weights_cached else "not downloaded"
        click.echo(f"{entry.name:<22} {size:>9}  {cached}")


@main.command()
@click.argument("model")
@model_options
@handles_errors
def inspect(
    model: str, weights: str, input_size: Any, input_channels: Any, mode: str, **classes: Any
) -> None:
    """Show the rewrite plan and the geometry of MODEL, without exporting."""
    from .conversion import convert, plan
    from .sources import load_model

    loaded = load_model(model, weights, num_classes=classes["num_classes"])
    size = input_size or loaded.input_size
    options = {"mode": mode, "name": model, "input_channels": input_channels}
    the_plan = plan(loaded.model, size, **options)
    click.echo(str(the_plan))
    if the_plan.convertible:
        from .conversion.receptive import receptive_field

        converted = convert(loaded.model, size, inplace=True, **options)
        click.echo(f"geometry: {converted.geometry}")
        (top, left), (height, width) = receptive_field(converted)
        click.echo(f"a cell reads {height}x{width} pixels from ({left}, {top}) of its window")


def _open(model: str, report: Reporter, **options: Any) -> Any:
    from .run import open_model

    ignored = [
        f"--{key.replace('_', '-')}"
        for key, value in options.items()
        if value not in (None, "DEFAULT", "window") and key != "output"
    ]
    if Path(model).is_file() and ignored:
        click.echo(f"warning: {', '.join(ignored)} apply to model names, not to {model}", err=True)
    return open_model(model, progress=report, **options)


@main.command()
@click.argument("model", metavar="MODEL_OR_ONNX")
@image_argument
@click.option(
    "--class", "class_names", multiple=True, metavar="NAME", help="Class to show (repeatable)."
)
@picture_option
@click.option("--top", default=4, show_default=True, help="Classes shown without --class.")
@output_option
@model_options
@quiet_option
@handles_errors
def heatmap(
    model: str,
    image: str,
    class_names: tuple[str, ...],
    out: Path,
    top: int,
    quiet: bool,
    **options: Any,
) -> None:
    """Class heatmaps of IMAGE, overlaid on it, written as a PNG."""
    from .run import heatmap as compute
    from .run import load_image
    from .run.render import save_heatmaps

    report = Reporter(quiet)
    runner = _open(model, report, **options)
    pixels = load_image(image)
    with report.step("computing class maps"):
        result = compute(runner, pixels)
    chosen = list(class_names) or result.top_classes(top, runner.metadata.get("background"))
    for name in chosen:
        result.index(name)  # unknown names fail before drawing
    save_heatmaps(pixels, result, out, chosen)
    rows, cols = result.scores.shape[1:]
    report.line(f"wrote {out}: {rows}x{cols} cells, stride {result.stride[0]}x{result.stride[1]}")
    for name in chosen:
        x, y, score = result.peak(name)
        report.line(f"{name}: peak {score:.3f} at x={x:.0f}, y={y:.0f}")


@main.command()
@click.argument("model", metavar="MODEL_OR_ONNX")
@image_argument
@picture_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--score-threshold", default=0.6, show_default=True, type=float)
@click.option("--iou-threshold", default=0.3, show_default=True, type=float)
@click.option(
    "--scales",
    callback=_scales,
    metavar="S1,S2,...",
    help="Image pyramid scales [default: 1.5,1.25,1.0,0.8,0.64,0.5].",
)
@output_option
@model_options
@quiet_option
@handles_errors
def detect(
    model: str,
    image: str,
    out: Path,
    json_path: Path | None,
    score_threshold: float,
    iou_threshold: float,
    scales: tuple[float, ...] | None,
    quiet: bool,
    **options: Any,
) -> None:
    """Detect objects in IMAGE; draw the boxes into a PNG (and optionally write JSON)."""
    from .run import DEFAULT_SCALES, load_image
    from .run import detect as run_detect
    from .run.render import save_detections

    report = Reporter(quiet)
    runner = _open(model, report, **options)
    pixels = load_image(image)
    thresholds: dict[str, Any] = {
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
    }
    with report.step("detecting over the image pyramid"):
        found = run_detect(runner, pixels, scales=scales or DEFAULT_SCALES, **thresholds)
    save_detections(pixels, found, out)
    if json_path is not None:
        json_path.write_text(found.to_json())
    written = f"wrote {out}" + (f" and {json_path}" if json_path else "")
    report.line(f"{written}: {len(found)} detection(s)")
    for item in found.as_list():
        x1, y1, x2, y2 = item["box"]
        report.line(
            f"{item['class']} {item['score']:.2f} at ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f})"
        )
