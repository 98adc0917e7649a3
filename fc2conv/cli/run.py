"""``fc2conv heatmap`` and ``fc2conv detect``: class maps and boxes of an image, as pictures and
JSON. Every output is checked before the model runs and written only when all succeeded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..run.images import DEFAULT_MAX_PIXELS
from ..runtime import RUNTIMES
from .options import (
    POSITIVE,
    Reporter,
    file_option,
    handles_errors,
    model_options,
    number_option,
    quiet_option,
    scales_option,
    together,
)

__all__ = ["detect", "heatmap"]

#: the model, the images, and the outputs of one image
run_arguments = together(
    click.argument("model", metavar="MODEL_OR_ONNX"),
    click.argument("images", nargs=-1, required=True),
    file_option("--out", "One image: the picture (.png, .jpg, .pdf, .svg, ...)."),
    file_option("--json", "JSON results."),
)


def class_option(help: str) -> Callable[[Any], Any]:
    return click.option("--class", "class_names", multiple=True, metavar="NAME", help=help)


#: options of both run commands: the outputs, the runtime, the maximal size, --force, many
#: images, and the model's
run_options = together(
    file_option("--jsonl", "Many images: a JSON line per image, written as each finishes."),
    click.option(
        "--out-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Many images: a picture per image in this folder.",
    ),
    file_option("--out-video", "One clip: its frames drawn into a video (.mp4, .mkv, .webm, ...)."),
    click.option("--resume", is_flag=True, help="Skip the images already in the --jsonl file."),
    click.option(
        "--ray",
        is_flag=False,
        flag_value="local",
        metavar="[ADDRESS]",
        help="Many images: run on a Ray cluster (ADDRESS, e.g. auto or ray://host:10001; "
        "alone: a local one).",
    ),
    click.option("--every", type=POSITIVE, metavar="SECONDS", help="Clips: a frame every SECONDS."),
    click.option("--fps", type=POSITIVE, metavar="N", help="Clips: N frames a second (by time)."),
    click.option("--output", help="Output with the class scores (index or name)."),
    click.option(
        "--runtime",
        type=click.Choice(list(RUNTIMES)),
        default="onnxruntime",
        help="What runs an exported model (openvino: pip install 'fc2conv[openvino]').",
    ),
    click.option(
        "--precision",
        type=click.Choice(sorted({p for ps in RUNTIMES.values() for p in ps}, reverse=True)),
        default="fp32",
        help="bf16: OpenVINO on a CPU with AVX512-BF16 or AMX.",
    ),
    number_option(
        "--max-size",
        "Longest side of any image the model runs on (larger images are scaled).",
        default=2048,
    ),
    number_option(
        "--max-pixels",
        "Most pixels an image file may decode to (a JPEG decodes scaled down first).",
        default=DEFAULT_MAX_PIXELS,
    ),
    click.option("--force", is_flag=True, help="Replace existing output files."),
    model_options,
    quiet_option,
    handles_errors,
)


def _run(command: str, model: str, images: tuple[str, ...], args: dict[str, Any]) -> None:
    """Run ``command`` with the parsed arguments: those named here are the run's outputs and
    settings, the rest the model's options."""
    from ..pipeline.command import OUTPUTS, SETTINGS, run_command
    from ..run.many import ManySummary

    report = Reporter(args.pop("quiet"))
    outputs = {key: args.pop(key) for key in OUTPUTS if key in args}
    settings = {key: args.pop(key) for key in SETTINGS if key in args}
    names = args.pop("class_names")  # heatmap: a tuple, as its records have always named it
    settings["classes"] = names if command == "heatmap" else list(names) or None
    full_size = args.pop("full_size", False)
    options = {"outputs": outputs, "full_size": full_size, "quiet": report.quiet, **args}
    done = run_command(command, model, images, settings, progress=report, **options)
    if isinstance(done, ManySummary):
        report.line(str(done))
        done.check()
    else:
        for line in done:
            report.line(line)


@click.command()
@run_arguments
@class_option('Class to show, by name or index (repeatable); "a,b,c" sums a group into one map.')
@file_option("--maps", "The raw maps of every level (.npz).")
@number_option("--top", "Classes shown without --class.", default=4)
@scales_option("1.41", "; a cam model: 1, the image as it is")
@click.option("--full-size", is_flag=True, help="Each panel at the image's own size.")
@run_options
def heatmap(model: str, images: tuple[str, ...], **args: Any) -> None:
    """Class heatmaps of IMAGES over an image pyramid, overlaid on them: for one image a
    picture (--out) and JSON (--json); for many (files, folders, globs, @list.txt, clips) a
    JSON line per image or frame (--jsonl) and a picture per image (--out-dir)."""
    _run("heatmap", model, images, args)


@click.command()
@run_arguments
@file_option("--coco", "Many images: the detections as a COCO file, written at the end.")
@class_option(
    'Detect only this class, by name or index (repeatable); "a,b,c" detects a group as one object.'
)
@click.option("--score-threshold", default=0.6, type=click.FloatRange(0, 1))
@click.option("--iou-threshold", default=0.3, type=click.FloatRange(0, 1))
@click.option(
    "--box-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    help="A box's side as a share of its window's [default: the model's, else 0.6].",
)
@scales_option("1.25")
@click.option("--track", is_flag=True, help="Clips: a track id for each box (see README).")
@run_options
def detect(model: str, images: tuple[str, ...], **args: Any) -> None:
    """Detect objects in IMAGES: for one image, the boxes drawn into a picture (--out) and
    JSON (--json); for many (files, folders, globs, @list.txt, clips), a JSON line per image
    or frame (--jsonl), a COCO file (--coco) and a picture per image (--out-dir)."""
    _run("detect", model, images, args)
