"""``fc2conv heatmap`` and ``fc2conv detect``: class maps and boxes of an image, as pictures and
JSON. Every output is checked before the model runs and written only when all succeeded."""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import Fc2ConvError
from ..run.images import DEFAULT_MAX_PIXELS
from ..runtime import RUNTIMES
from .options import (
    Reporter,
    handles_errors,
    model_options,
    quiet_option,
    scales_option,
)

__all__ = ["detect", "heatmap"]

images_argument = click.argument("images", nargs=-1, required=True)
picture_option = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="One image: the picture (.png, .jpg, .pdf, .svg, ...).",
)
json_option = click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="JSON results."
)


def run_options(command: Any) -> Any:
    """Options of both run commands: the output, the maximal size, --force, many images, and
    the model's."""
    options: list[Callable[[Any], Any]] = [
        click.option(
            "--jsonl",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Many images: a JSON line per image, written as each finishes.",
        ),
        click.option(
            "--out-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Many images: a picture per image in this folder.",
        ),
        click.option("--resume", is_flag=True, help="Skip the images already in the --jsonl file."),
        click.option(
            "--ray",
            is_flag=False,
            flag_value="local",
            default=None,
            metavar="[ADDRESS]",
            help="Many images: run on a Ray cluster (ADDRESS, e.g. auto or ray://host:10001; "
            "alone: a local one).",
        ),
        click.option(
            "--output", default=None, help="Output with the class scores (index or name)."
        ),
        click.option(
            "--runtime",
            type=click.Choice(list(RUNTIMES)),
            default="onnxruntime",
            show_default=True,
            help="What runs an exported model (openvino: pip install 'fc2conv[openvino]').",
        ),
        click.option(
            "--precision",
            type=click.Choice(sorted({p for ps in RUNTIMES.values() for p in ps}, reverse=True)),
            default="fp32",
            show_default=True,
            help="bf16: OpenVINO on a CPU with AVX512-BF16 or AMX.",
        ),
        click.option(
            "--max-size",
            type=click.IntRange(1, None),
            default=2048,
            show_default=True,
            help="Longest side of any image the model runs on (larger images are scaled).",
        ),
        click.option(
            "--max-pixels",
            type=click.IntRange(1, None),
            default=DEFAULT_MAX_PIXELS,
            show_default=True,
            help="Most pixels an image file may decode to (a JPEG decodes scaled down first).",
        ),
        click.option("--force", is_flag=True, help="Replace existing output files."),
        model_options,
        quiet_option,
        handles_errors,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _open(model: str, report: Reporter, **options: Any) -> Any:
    from ..pipeline import open_model

    return open_model(model, progress=report, **options)


@click.command()
@click.argument("model", metavar="MODEL_OR_ONNX")
@images_argument
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
    images: tuple[str, ...],
    class_names: tuple[str, ...],
    out: Path | None,
    json_path: Path | None,
    maps_path: Path | None,
    top: int,
    scales: tuple[float, ...] | None,
    full_size: bool,
    max_size: int,
    max_pixels: int,
    force: bool,
    quiet: bool,
    jsonl: Path | None,
    out_dir: Path | None,
    resume: bool,
    ray: str | None,
    **options: Any,
) -> None:
    """Class heatmaps of IMAGES over an image pyramid, overlaid on them: for one image a
    picture (--out) and JSON (--json); for many (files, folders, globs, @list.txt) a JSON line
    per image (--jsonl) and a picture per image (--out-dir)."""
    from ..run.many import picture_writer

    many = {"jsonl": jsonl, "out_dir": out_dir, "resume": resume, "force": force, "ray": ray}
    report = Reporter(quiet)
    refused = {"out": out, "json": json_path, "maps": maps_path}
    settings = {"classes": class_names, "top": top, "scales": scales, "max_size": max_size}
    settings["max_pixels"] = max_pixels
    batch = many_images("heatmap", model, images, report, refused, **many)
    if batch is not None:
        runner = _open(model, report, **options)
        picture = picture_writer("heatmap", runner, settings, full_size)
        run_many(batch, runner, settings, picture)
        return
    one = single_image("heatmap", images, out, json_path, force, maps=maps_path)
    runner = _open(model, report, **options)
    for line in one.run(runner, {**settings, "full_size": full_size}, report):
        report.line(line)


@click.command()
@click.argument("model", metavar="MODEL_OR_ONNX")
@images_argument
@picture_option
@json_option
@click.option(
    "--coco",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Many images: the detections as a COCO file, written at the end.",
)
@click.option(
    "--class",
    "class_names",
    multiple=True,
    metavar="NAME",
    help='Detect only this class, by name or index (repeatable); "a,b,c" detects a group as one object.',
)
@click.option("--score-threshold", default=0.6, show_default=True, type=click.FloatRange(0, 1))
@click.option("--iou-threshold", default=0.3, show_default=True, type=click.FloatRange(0, 1))
@scales_option("1.25")
@run_options
def detect(
    model: str,
    images: tuple[str, ...],
    out: Path | None,
    json_path: Path | None,
    coco: Path | None,
    class_names: tuple[str, ...],
    score_threshold: float,
    iou_threshold: float,
    scales: tuple[float, ...] | None,
    max_size: int,
    max_pixels: int,
    force: bool,
    quiet: bool,
    jsonl: Path | None,
    out_dir: Path | None,
    resume: bool,
    ray: str | None,
    **options: Any,
) -> None:
    """Detect objects in IMAGES: for one image, the boxes drawn into a picture (--out) and
    JSON (--json); for many (files, folders, globs, @list.txt), a JSON line per image
    (--jsonl), a COCO file (--coco) and a picture per image (--out-dir)."""
    settings: dict[str, Any] = {
        "scales": scales,
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "max_size": max_size,
        "classes": list(class_names) or None,
        "max_pixels": max_pixels,
    }
    many = {"jsonl": jsonl, "out_dir": out_dir, "resume": resume, "force": force, "ray": ray}
    report = Reporter(quiet)
    refused = {"out": out, "json": json_path}
    batch = many_images("detect", model, images, report, refused, coco=coco, **many)
    if batch is not None:
        run_many(batch, _open(model, report, **options), settings)
        return
    if coco is not None:
        raise Fc2ConvError("--coco is for many images (with --jsonl); use --json for one")
    one = single_image("detect", images, out, json_path, force)
    for line in one.run(_open(model, report, **options), settings, report):
        report.line(line)


def single_image(
    command: str,
    images: tuple[str, ...],
    out: Path | None,
    json_path: Path | None,
    force: bool,
    maps: Path | None = None,
) -> Any:
    """The run of one image, which needs --out or --json (its outputs checked)."""
    from ..run.one_image import OneImage

    if Path(images[0]).is_file() and out is None and json_path is None:
        raise click.UsageError(
            "one image needs --out PICTURE (e.g. --out result.png) and/or --json FILE; runs of "
            "many images write --jsonl FILE and/or --out-dir FOLDER"
        )
    return OneImage(command, images[0], out=out, json=json_path, maps=maps, force=force)


def many_images(
    command: str,
    model: str,
    images: tuple[str, ...],
    report: Reporter,
    refused: dict[str, Path | None],
    **outputs: Any,
) -> Any:
    """The run over many images that the arguments ask for (outputs checked), or None for a
    run of one image; ``refused``: the single-image outputs, which such a run does not take."""
    from ..run.batch import collect_images
    from ..run.many import ManyImages

    first = Path(images[0])
    single = (
        len(images) == 1
        and not images[0].startswith("@")
        and (first.is_file() or not (first.is_dir() or glob.has_magic(images[0])))
    )  # a missing file too: single_image says so
    if single and outputs["jsonl"] is None and outputs["out_dir"] is None:
        if outputs["resume"]:
            raise Fc2ConvError("--resume goes with --jsonl (many images)")
        if outputs["ray"] is not None:
            raise Fc2ConvError("--ray writes --jsonl (many images); give --jsonl")
        return None
    if outputs["jsonl"] is None and outputs["out_dir"] is None:
        given = [f"--{name}" for name, value in refused.items() if value is not None]
        what = "a folder" if first.is_dir() and len(images) == 1 else "many images"
        if given:
            raise click.UsageError(
                f"{', '.join(given)} {'writes' if len(given) == 1 else 'write'} the results of "
                f"one image file, and {images[0]} is "
                f"{what}: write --jsonl FILE and/or --out-dir FOLDER instead"
            )
        raise click.UsageError("many images need --jsonl FILE and/or --out-dir FOLDER")
    named = [f"--{name}" for name, value in refused.items() if value is not None]
    if named:
        raise Fc2ConvError(
            f"{', '.join(named)}: for a run of one image without --jsonl or --out-dir; "
            "runs with those write pictures into --out-dir"
        )
    batch = ManyImages(
        command, collect_images(images), model=model, progress=report, quiet=report.quiet, **outputs
    )
    return batch


def run_many(batch: Any, runner: Any, settings: dict[str, Any], picture: Any = None) -> None:
    """Run ``batch``, print its summary; exit code 1 if an image failed, 130 if interrupted
    (its JSON Lines keep what finished)."""
    try:
        summary = batch.run(runner, settings, picture)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    batch.progress.line(str(summary))
    summary.check()
