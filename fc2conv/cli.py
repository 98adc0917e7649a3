"""The ``fc2conv`` command: a thin shell over the Python API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from . import __version__
from .errors import Fc2ConvError

stderr = Console(stderr=True, highlight=False)


class ModelFirstGroup(click.Group):
    """``fc2conv MODEL --out PATH`` runs ``export``; other first words are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["export", *args]
        return super().parse_args(ctx, args)


class Reporter:
    """Progress of long steps on stderr; silent with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    @contextmanager
    def step(self, text: str) -> Iterator[Callable[[str], None]]:
        if self.quiet:
            yield lambda message: None
            return
        start = time.perf_counter()
        with stderr.status(text) as status:
            yield lambda message: status.update(message)
        stderr.print(f"[green]✓[/] {text} ({time.perf_counter() - start:.1f} s)")

    def line(self, text: str) -> None:
        if not self.quiet:
            click.echo(text)


def _size(ctx: click.Context | None, param: object, text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a size like 224 or 224x224") from None
    if len(numbers) == 1:
        numbers *= 2
    if len(numbers) != 2 or min(numbers) < 1:
        raise click.BadParameter(f"'{text}' is not a size like 224 or 224x224")
    return numbers[0], numbers[1]


def _run(debug: bool, action: Callable[[], Any]) -> None:
    try:
        action()
    except Fc2ConvError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@click.group(cls=ModelFirstGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fc2conv")
def main() -> None:
    """Turn an image classifier into a fully convolutional network and export it to ONNX.

    \b
    fc2conv MODEL --out PATH     convert MODEL and write a dynamic-size ONNX model
    fc2conv list                 the models fc2conv converts
    fc2conv inspect MODEL        the rewrite plan and the geometry, without exporting
    fc2conv heatmap MODEL IMAGE  class heatmap of an image, as a picture
    fc2conv detect MODEL IMAGE   boxes from the class maps over an image pyramid
    """


weights_option = click.option(
    "--weights",
    default="DEFAULT",
    show_default=True,
    metavar="DEFAULT|none|PATH",
    help="DEFAULT: torchvision's pretrained weights (torch hub cache); none: random; "
    "PATH: a state-dict file (.pth, .pt, .safetensors).",
)
head_option = click.option(
    "--head",
    type=click.Choice(["window", "cam"]),
    default="window",
    show_default=True,
    help="window: one cell per canonical-size window; cam: class-activation map (affine heads).",
)
size_option = click.option(
    "--input-size",
    default=None,
    metavar="HxW",
    callback=_size,
    help="Canonical input size of the classifier [default: the model's own, e.g. 224x224].",
)
debug_option = click.option("--debug", is_flag=True, help="Show tracebacks.")
quiet_option = click.option("--quiet", is_flag=True, help="Print nothing but errors.")


def _convert(
    name: str, weights: str, input_size: tuple[int, int] | None, head: str, report: Reporter
) -> tuple[Any, Any]:
    from .convert import convert
    from .models import load_model

    if weights.lower() == "none":
        source = "random weights"
    elif weights.upper() == "DEFAULT":
        source = "bundled weights" if name == "shapes" else "pretrained weights"
    else:
        source = weights
    with report.step(f"loading {name} ({source})"):
        loaded = load_model(name, weights)
    size = input_size or loaded.input_size
    with report.step("converting"):
        converted = convert(loaded.model, size, head=head, name=name, inplace=True)
        converted.metadata.update(loaded.metadata)
    return loaded, converted


@main.command()
@click.argument("model")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the .onnx file.",
)
@weights_option
@size_option
@head_option
@click.option("--opset", default=18, show_default=True, type=click.IntRange(18, None))
@click.option(
    "--rtol",
    default=1e-4,
    show_default=True,
    type=float,
    help="Relative error allowed against the original model and in onnxruntime.",
)
@click.option("--no-verify", is_flag=True, help="Skip the equivalence and onnxruntime checks.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@quiet_option
@debug_option
@click.option(
    "--stage-in",
    "stage_in",
    hidden=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Internal: do only the PyTorch part, writing into this folder.",
)
def export(
    model: str,
    out: Path,
    weights: str,
    input_size: tuple[int, int] | None,
    head: str,
    opset: int,
    rtol: float,
    no_verify: bool,
    force: bool,
    quiet: bool,
    debug: bool,
    stage_in: Path | None,
) -> None:
    """Convert MODEL and write a dynamic-size ONNX model to --out.

    The PyTorch part (loading, converting, verifying, exporting) runs in a child process; the
    written file is checked here once that process has ended, so PyTorch and the model's
    weights are no longer in memory while onnx.checker and onnxruntime load the file.
    """
    report = Reporter(quiet)
    if stage_in is not None:
        code = 0
        try:
            _run(
                debug,
                lambda: _stage(
                    model,
                    out.name,
                    weights,
                    input_size,
                    head,
                    opset,
                    rtol,
                    no_verify,
                    stage_in,
                    report,
                ),
            )
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        # Like multiprocessing's workers, end without Python's teardown: unloading torch touches
        # about 0.1 GB of library pages, which would be this process's peak for nothing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def action() -> None:
        from .onnx_file import (
            CASES_FILE,
            check_file,
            check_target,
            commit,
            data_path,
            read_metadata,
            staging_folder,
        )

        check_target(out, force)
        staging = staging_folder(out)
        try:
            child = ["export", model, "--out", str(out), "--stage-in", str(staging)]
            child += ["--weights", weights, "--head", head, "--opset", str(opset)]
            child += ["--rtol", repr(rtol)]
            if input_size:
                child += ["--input-size", f"{input_size[0]}x{input_size[1]}"]
            flags = {"--no-verify": no_verify, "--quiet": quiet, "--debug": debug}
            child += [flag for flag, on in flags.items() if on]
            code = _run_child(child)
            if code < 0:
                raise Fc2ConvError(
                    f"the PyTorch part of the export was killed by signal {-code}"
                    + (" (out of memory?)" if -code == signal.SIGKILL else "")
                )
            if code:
                sys.exit(code)  # the child has said what went wrong
            staged = staging / out.name
            checks = []
            if not no_verify:
                with report.step("checking the written model") as say:
                    checks = check_file(staged, staging / CASES_FILE, rtol, say)
            summary = json.loads((staging / SUMMARY_FILE).read_text())
            geometry = read_metadata(staged)["geometry"]
            external = data_path(staged).exists()
            commit(staged, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        megabytes = out.stat().st_size / 1e6
        report.line(
            f"wrote {out} ({megabytes:.1f} MB"
            + (f", weights in {data_path(out).name})" if external else ")")
        )
        report.line(f"geometry: {geometry}")
        if summary["verified"] is not None:
            report.line(f"PyTorch: {summary['verified']}")
        for check in checks:
            report.line(
                f"onnxruntime at {check.height}x{check.width}: "
                f"{check.map_size[0]}x{check.map_size[1]} map, "
                f"relative error {check.relative_error:.1e}"
            )

    _run(debug, action)


SUMMARY_FILE = "summary.json"


def _stage(
    model: str,
    name: str,
    weights: str,
    input_size: tuple[int, int] | None,
    head: str,
    opset: int,
    rtol: float,
    no_verify: bool,
    staging: Path,
    report: Reporter,
) -> None:
    """The PyTorch part of ``export``: the staged model, the check cases and a summary."""
    from .export import stage_onnx
    from .verify import verify

    loaded, converted = _convert(model, weights, input_size, head, report)
    verified = None
    if not no_verify:
        with report.step("verifying against the original model"):
            verified = verify(loaded.model, converted, rtol=rtol)
    with report.step("exporting to ONNX") as say:
        stage_onnx(converted, staging, name, opset=opset, cases=not no_verify, progress=say)
    summary = {"verified": None if verified is None else str(verified)}
    (staging / SUMMARY_FILE).write_text(json.dumps(summary))


def _run_child(args: list[str]) -> int:
    """Run ``fc2conv ARGS`` in a fresh Python process; its output goes where ours goes."""
    command = [sys.executable, "-m", "fc2conv.cli", *args]
    try:  # a real terminal or file: the child writes to it directly, progress and all
        sys.stdout.fileno()
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # captured streams (click's CliRunner)
        done = subprocess.run(command, capture_output=True, text=True)
        click.echo(done.stdout, nl=False)
        click.echo(done.stderr, nl=False, err=True)
        return done.returncode
    sys.stdout.flush()
    sys.stderr.flush()
    return subprocess.run(command).returncode


@main.command("list")
def list_models() -> None:
    """The models fc2conv converts."""
    from .models import supported_models

    for name in supported_models():
        click.echo(name)


@main.command()
@click.argument("model")
@weights_option
@size_option
@head_option
@debug_option
def inspect(
    model: str, weights: str, input_size: tuple[int, int] | None, head: str, debug: bool
) -> None:
    """Show the rewrite plan and the geometry of MODEL, without exporting."""

    def action() -> None:
        from .convert import convert, plan
        from .models import load_model

        loaded = load_model(model, weights)
        size = input_size or loaded.input_size
        the_plan = plan(loaded.model, size, head=head, name=model)
        click.echo(str(the_plan))
        if the_plan.convertible:
            converted = convert(loaded.model, size, head=head, name=model, inplace=True)
            click.echo(f"geometry: {converted.geometry}")

    _run(debug, action)


def _runner(
    model: str, weights: str, input_size: tuple[int, int] | None, head: str, report: Reporter
) -> Any:
    from .inference import Runner

    if model.endswith(".onnx"):
        with report.step(f"loading {model} in onnxruntime"):
            return Runner.from_onnx(model)
    _, converted = _convert(model, weights, input_size, head, report)
    return Runner.from_model(converted)


image_argument = click.argument("image", type=click.Path(exists=True, dir_okay=False))
out_option = click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the PNG.",
)


@main.command()
@click.argument("model", metavar="MODEL_OR_ONNX")
@image_argument
@click.option(
    "--class",
    "class_names",
    multiple=True,
    metavar="NAME",
    help="Class to show (repeatable) [default: the classes with the highest peaks].",
)
@out_option
@click.option("--top", default=4, show_default=True, help="How many classes to show by default.")
@weights_option
@size_option
@head_option
@quiet_option
@debug_option
def heatmap(
    model: str,
    image: str,
    class_names: tuple[str, ...],
    out: Path,
    top: int,
    weights: str,
    input_size: tuple[int, int] | None,
    head: str,
    quiet: bool,
    debug: bool,
) -> None:
    """Class heatmaps of IMAGE, overlaid on it, written as a PNG."""
    report = Reporter(quiet)

    def action() -> None:
        from .heatmap import heatmap as compute
        from .inference import load_image
        from .render import save_heatmaps

        runner = _runner(model, weights, input_size, head, report)
        pixels = load_image(image)
        with report.step("computing class maps"):
            result = compute(runner, pixels)
        chosen = list(class_names) or _top_classes(result, runner, top)
        for name in chosen:
            result.index(name)  # unknown names fail before drawing
        save_heatmaps(pixels, result, out, chosen)
        report.line(
            f"wrote {out}: {result.scores.shape[1]}x{result.scores.shape[2]} cells, "
            f"stride {result.stride[0]}x{result.stride[1]}"
        )
        for name in chosen:
            x, y, score = result.peak(name)
            report.line(f"{name}: peak {score:.3f} at x={x:.0f}, y={y:.0f}")

    _run(debug, action)


def _top_classes(result: Any, runner: Any, count: int) -> list[str]:
    background = runner.extra.get("background")
    peaks = result.scores.reshape(result.scores.shape[0], -1).max(1)
    order = [int(i) for i in peaks.argsort()[::-1] if int(i) != background]
    return [result.classes[i] for i in order[:count]]


@main.command()
@click.argument("model", metavar="MODEL_OR_ONNX")
@image_argument
@out_option
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the detections as JSON.",
)
@click.option("--score-threshold", default=0.6, show_default=True, type=float)
@click.option("--iou-threshold", default=0.3, show_default=True, type=float)
@click.option(
    "--scales",
    default=None,
    metavar="S1,S2,...",
    help="Image pyramid scales [default: 1.5,1.25,1.0,0.8,0.64,0.5].",
)
@weights_option
@size_option
@head_option
@quiet_option
@debug_option
def detect(
    model: str,
    image: str,
    out: Path,
    json_path: Path | None,
    score_threshold: float,
    iou_threshold: float,
    scales: str | None,
    weights: str,
    input_size: tuple[int, int] | None,
    head: str,
    quiet: bool,
    debug: bool,
) -> None:
    """Detect objects in IMAGE; draw the boxes into a PNG (and optionally write JSON)."""
    report = Reporter(quiet)
    try:
        pyramid = tuple(float(s) for s in scales.split(",")) if scales else None
    except ValueError:
        raise click.BadParameter(
            f"'{scales}' is not a list of numbers like 1.0,0.8", param_hint="--scales"
        ) from None

    def action() -> None:
        from .detect import DEFAULT_SCALES
        from .detect import detect as run_detect
        from .inference import load_image
        from .render import save_detections

        runner = _runner(model, weights, input_size, head, report)
        pixels = load_image(image)
        with report.step("detecting over the image pyramid"):
            found = run_detect(
                runner,
                pixels,
                scales=pyramid or DEFAULT_SCALES,
                score_threshold=score_threshold,
                iou_threshold=iou_threshold,
            )
        save_detections(pixels, found, out)
        if json_path is not None:
            json_path.write_text(found.to_json())
        report.line(
            f"wrote {out}"
            + (f" and {json_path}" if json_path else "")
            + f": {len(found)} detection(s)"
        )
        for item in found.as_list():
            x1, y1, x2, y2 = item["box"]
            report.line(
                f"{item['class']} {item['score']:.2f} at ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f})"
            )

    _run(debug, action)


if __name__ == "__main__":
    main()
