"""The ``fc2conv`` command: parse, call the Python API, print."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import click

from .._version import __version__
from ..errors import Fc2ConvError
from .options import Reporter, handles_errors, model_options, preprocessing_options, quiet_option
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


@click.group(cls=ModelFirstGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fc2conv")
def main() -> None:
    """Turn an image classifier into a fully convolutional network and export it to ONNX:
    `fc2conv MODEL --out PATH` (export); the other commands list, inspect and run models."""


@main.command(cls=ExportCommand)
@click.argument("model")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@model_options
@click.option(
    "--opset",
    type=click.IntRange(7, None),
    help="ONNX opset of the output [default: 18; for an ONNX classifier, its own].",
)
@click.option(
    "--rtol",
    default=1e-4,
    show_default=True,
    type=click.FloatRange(0, None, min_open=True),
    help="Relative error allowed.",
)
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
    from ..pipeline.export import is_onnx_file
    from ..sources.imports import is_import_string

    report = Reporter(quiet)
    if options.pop("imagenet"):
        if not (is_onnx_file(model) or is_import_string(model)):
            raise Fc2ConvError(
                "--imagenet: for ONNX classifiers and your own code; a model name brings its "
                "own preprocessing"
            )
        if options["mean"] is not None or options["std"] is not None:
            raise Fc2ConvError("--imagenet sets the mean and std: give it or --mean/--std")
        from ..sources.base import IMAGENET_MEAN, IMAGENET_STD

        options.update(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    if (options["opset"] or 18) < 18 and not is_onnx_file(model):
        raise click.BadParameter(
            f"{options['opset']}: PyTorch models export at opset 18 or later", param_hint="--opset"
        )
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
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
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
def quantize(
    model: str,
    calibration: tuple[str, ...],
    out: Path,
    held_out: tuple[str, ...],
    size: int | None,
    force: bool,
    quiet: bool,
) -> None:
    """Write a static int8 copy of an fc2conv model (onnxruntime QDQ, per-channel weights),
    calibrated on your images, and report how it agrees with fp32 on held-out images."""
    from ..run.quantize import quantize as run_quantize

    report = Reporter(quiet)
    result = run_quantize(
        model, calibration, out, held_out=held_out or None, size=size, force=force, progress=report
    )
    report.line(str(result))


main.add_command(heatmap)
main.add_command(detect)
