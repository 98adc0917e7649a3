"""``fc2conv heatmap`` and ``fc2conv detect``: class maps and boxes of an image, as pictures and
JSON. Every output is checked before the model runs and written only when all succeeded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import Fc2ConvError
from .options import (
    Reporter,
    check_output,
    handles_errors,
    model_options,
    output_files,
    quiet_option,
    scales_option,
)

__all__ = ["detect", "heatmap"]

image_argument = click.argument("image", type=click.Path(exists=True, dir_okay=False))
picture_option = click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The picture (.png, .jpg, .pdf, .svg, ...).",
)
json_option = click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="JSON results."
)


def run_options(command: Any) -> Any:
    """Options of both run commands: the output, the maximal size, --force, and the model's."""
    options: list[Callable[[Any], Any]] = [
        click.option(
            "--output", default=None, help="Output with the class scores (index or name)."
        ),
        click.option(
            "--max-size",
            type=click.IntRange(1, None),
            default=2048,
            show_default=True,
            help="Longest side of any image the model runs on (larger images are scaled).",
        ),
        click.option("--force", is_flag=True, help="Replace existing output files."),
        model_options,
        quiet_option,
        handles_errors,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _check_outputs(out: Path, others: list[Path | None], force: bool) -> list[Path]:
    from ..run.render import picture_formats

    if out.suffix.lower().lstrip(".") not in picture_formats():
        listed = ", ".join(sorted(picture_formats()))
        raise Fc2ConvError(
            f"cannot write a picture as {out.name}: use one of .{listed.replace(', ', ', .')}"
        )
    paths = [out, *(path for path in others if path is not None)]
    if len(set(map(Path.resolve, paths))) < len(paths):
        raise Fc2ConvError("--out, --json and --maps must name different files")
    for path in paths:
        check_output(path, force)
    return paths


def _open(model: str, report: Reporter, **options: Any) -> Any:
    from ..run import open_model

    ignored = [
        f"--{key.replace('_', '-')}"
        for key, value in options.items()
        if value not in (None, "DEFAULT", "window") and key != "output"
    ]
    if Path(model).is_file() and ignored:
        click.echo(f"warning: {', '.join(ignored)} apply to model names, not to {model}", err=True)
    return open_model(model, progress=report, **options)


def _say_scaled(
    report: Reporter, size: tuple[int, int], scales: tuple[float, ...], max_size: int
) -> None:
    if max(size) > max_size:
        report.line(
            f"note: the {size[0]}x{size[1]} image is larger than --max-size {max_size}: it ran "
            f"scaled down, at scales up to {max(scales):.2g}"
        )


@click.command()
@click.argument("model", metavar="MODEL_OR_ONNX")
@image_argument
@click.option(
    "--class",
    "class_names",
    multiple=True,
    metavar="NAME",
    help='Class to show, by name or index (repeatable); "a,b,c" sums a group into one map.',
)
@picture_option
@json_option
@click.option(
    "--maps",
    "maps_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The raw maps of every level (.npz).",
)
@click.option(
    "--top",
    default=4,
    show_default=True,
    type=click.IntRange(1, None),
    help="Classes shown without --class.",
)
@scales_option("1.41")
@click.option("--full-size", is_flag=True, help="Each panel at the image's own size.")
@run_options
def heatmap(
    model: str,
    image: str,
    class_names: tuple[str, ...],
    out: Path,
    json_path: Path | None,
    maps_path: Path | None,
    top: int,
    scales: tuple[float, ...] | None,
    full_size: bool,
    max_size: int,
    force: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Class heatmaps of IMAGE over an image pyramid, overlaid on it, written as a picture."""
    import numpy as np

    from ..run import heatmap as compute
    from ..run.heatmaps import class_members
    from ..run.images import read_image
    from ..run.render import save_heatmaps

    if maps_path is not None and maps_path.suffix != ".npz":
        raise Fc2ConvError(f"--maps writes a NumPy .npz file, not {maps_path.name}")
    paths = _check_outputs(out, [json_path, maps_path], force)
    report = Reporter(quiet)
    runner = _open(model, report, **options)
    for name in class_names:  # unknown names fail before the model runs
        class_members(runner.classes, name)
    pixels, size = read_image(image, max_size)
    with report.step("computing class maps over the image pyramid"):
        result = compute(runner, pixels, scales=scales, max_size=max_size, image_size=size)
    background = runner.metadata.get("background")
    chosen: list[Any] = list(class_names) or list(result.top_classes(top, background))
    shown = result.select(chosen)
    with output_files(paths) as (picture, *others):
        save_heatmaps(pixels, shown, picture, full_size=full_size)
        if json_path is not None:
            data = {"model": runner.name, **result.as_dict(chosen, top=max(top, 5))}
            others.pop(0).write_text(json.dumps(data, indent=2))
        if maps_path is not None:
            arrays: dict[str, Any] = {
                f"level_{i}": level.scores for i, level in enumerate(result.levels)
            }
            arrays.update(scales=np.array(result.scales), classes=np.array(result.classes))
            with open(others.pop(0), "wb") as file:
                np.savez(file, **arrays)
    _say_scaled(report, result.image_size, result.scales, max_size)
    scales_text = ", ".join(f"{s:.2g}" for s in result.scales)
    report.line(f"wrote {', '.join(map(str, paths))}: scales {scales_text}")
    for label in shown.classes:
        peak = shown.peak(label)
        report.line(
            f"{label}: peak {peak.score:.3f} at x={peak.x:.0f}, y={peak.y:.0f} (scale {peak.scale:.2g})"
        )


@click.command()
@click.argument("model", metavar="MODEL_OR_ONNX")
@image_argument
@picture_option
@json_option
@click.option("--score-threshold", default=0.6, show_default=True, type=click.FloatRange(0, 1))
@click.option("--iou-threshold", default=0.3, show_default=True, type=click.FloatRange(0, 1))
@scales_option("1.25")
@run_options
def detect(
    model: str,
    image: str,
    out: Path,
    json_path: Path | None,
    score_threshold: float,
    iou_threshold: float,
    scales: tuple[float, ...] | None,
    max_size: int,
    force: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Detect objects in IMAGE; draw the boxes into a picture (and optionally write JSON)."""
    from ..run import detect as run_detect
    from ..run.images import read_image
    from ..run.render import save_detections

    paths = _check_outputs(out, [json_path], force)
    report = Reporter(quiet)
    runner = _open(model, report, **options)
    pixels, size = read_image(image, max_size)
    settings: dict[str, Any] = {
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "scales": scales,
        "max_size": max_size,
        "image_size": size,
    }
    with report.step("detecting over the image pyramid"):
        found = run_detect(runner, pixels, **settings)
    with output_files(paths) as (picture, *others):
        save_detections(pixels, found, picture)
        if json_path is not None:
            others[0].write_text(found.to_json())
    _say_scaled(report, size, tuple(found.settings["scales"]), max_size)
    report.line(f"wrote {', '.join(map(str, paths))}: {len(found)} detection(s)")
    for item in found.as_list():
        x1, y1, x2, y2 = item["box"]
        report.line(
            f"{item['class']} {item['score']:.2f} at ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f})"
        )
