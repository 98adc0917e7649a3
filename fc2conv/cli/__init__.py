"""The ``fc2conv`` command: parse, call the Python API, print."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import click

from .._version import __version__
from .options import (
    POSITIVE,
    Reporter,
    file_option,
    handles_errors,
    model_options,
    preprocessing_options,
    quiet_option,
)
from .run import detect, heatmap


class ModelFirstGroup(click.Group):
    """``fc2conv MODEL --out PATH`` runs ``export``; other first words are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = args[0] if args else None
        if first and first not in self.commands and not first.startswith("-"):
            from ..sources import known_names

            close = difflib.get_close_matches(first, list(self.commands), n=1, cutoff=0.75)
            if close and first not in known_names() and not Path(first).exists():
                ctx.fail(f"no such command '{first}'; did you mean {close[0]}?")
            args = ["export", *args]
        return super().parse_args(ctx, args)


class ExportCommand(click.Command):
    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage("fc2conv", "MODEL --out PATH [OPTIONS]")


@click.group(
    cls=ModelFirstGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(__version__, prog_name="fc2conv")
def main() -> None:
    """Turn an image classifier into a fully convolutional network and export it to ONNX:
    `fc2conv MODEL --out PATH` (export); the other commands list, inspect and run models."""


@main.command(cls=ExportCommand)
@click.argument("model")
@file_option("--out", "The ONNX file to write.", required=True)
@model_options
@click.option(
    "--opset",
    type=click.IntRange(7, None),
    help="ONNX opset of the output [default: 18; for an ONNX classifier, its own].",
)
@click.option("--rtol", default=1e-4, type=POSITIVE, help="Relative error allowed.")
@click.option("--no-verify", is_flag=True, help="Skip the equivalence and onnxruntime checks.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@preprocessing_options
@quiet_option
@handles_errors
def export(model: str, out: Path, quiet: bool, no_verify: bool, **options: Any) -> None:
    """Convert MODEL (a model name or an ONNX classifier file) and write a dynamic-size ONNX
    model to --out.

    For a PyTorch model, the PyTorch part (loading, converting, verifying, exporting) runs in
    a child process; the written file is checked here once that process has ended. An ONNX
    classifier is converted without PyTorch.
    """
    from ..pipeline import export_model

    report = Reporter(quiet)
    options["output"] = options.pop("class_output")
    report.line(str(export_model(model, out, check=not no_verify, progress=report, **options)))


@main.command("list")
def list_models() -> None:
    """The models fc2conv converts, their input size, and whether their weights are here."""
    from ..sources import model_entries

    click.echo(f"{'model':<22} {'input':>9}  pretrained weights")
    for entry in model_entries():
        size = f"{entry.input_size[0]}x{entry.input_size[1]}"
        cached = "cached" if entry.weights_cached else "not downloaded"
        click.echo(f"{entry.name:<22} {size:>9}  {cached}")


@main.command()
@click.argument("model")
@model_options
@handles_errors
def inspect(model: str, **spec: Any) -> None:
    """Show the rewrite plan and the geometry of MODEL (a name or an ONNX classifier file),
    without exporting."""
    from ..pipeline import inspect_model

    click.echo(inspect_model(model, **spec))


@main.command()
@click.argument("model", metavar="FCN_ONNX", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--calibration",
    multiple=True,
    required=True,
    metavar="IMAGES",
    help="Images like the ones the model will see: files, folders, globs, @list.txt (repeatable).",
)
@file_option("--out", "The int8 ONNX file to write.", required=True)
@click.option(
    "--held-out",
    multiple=True,
    metavar="IMAGES",
    help="Images to compare fp32 and int8 on [default: a quarter of the calibration images].",
)
@click.option(
    "--size",
    type=click.IntRange(16, None),
    help="Longest image side for calibration and comparison [default: twice the window, at "
    "least 448].",
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@quiet_option
@handles_errors
def quantize(model: str, calibration: tuple[str, ...], out: Path, quiet: bool, **args: Any) -> None:
    """Write a static int8 copy of an fc2conv model (onnxruntime QDQ, per-channel weights),
    calibrated on your images, and report how it agrees with fp32 on held-out images."""
    from ..run.quantize import quantize as run_quantize

    args["held_out"] = args["held_out"] or None
    report = Reporter(quiet)
    report.line(str(run_quantize(model, calibration, out, progress=report, **args)))


main.add_command(heatmap)
main.add_command(detect)
