"""``fc2conv heatmap`` and ``fc2conv detect``: class maps and boxes of an image, as pictures and
JSON. Every output is checked before the model runs and written only when all succeeded."""

from __future__ import annotations

import glob
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ..errors import Fc2ConvError
from ..runtime import RUNTIMES
from .options import (
    Reporter,
    check_output,
    handles_errors,
    interrupt_on_sigterm,
    model_options,
    output_files,
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
    from ..pipeline import open_model

    ignored = [
        f"--{key.replace('_', '-')}"
        for key, value in options.items()
        if value not in (None, "DEFAULT", "window")
        and key not in ("output", "runtime", "precision")
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
    import numpy as np

    from ..run import heatmap as compute
    from ..run.heatmaps import class_members
    from ..run.images import read_image
    from ..run.render import save_heatmaps

    batch = Batch.of("heatmap", model, images, jsonl, out_dir, None, resume, force, quiet, ray)
    if batch is not None:
        batch.refuse_single_outputs(out=out, json=json_path, maps=maps_path)
        runner = _open(model, batch.report, **options)
        for name in class_names:  # unknown names fail before the model runs
            class_members(runner.classes, name)
        background = runner.metadata.get("background")

        def heatmap_picture(item: Any, path: Path) -> None:
            chosen = chosen_classes(item.result, class_names, top, background)
            save_heatmaps(item.pixels, item.result.select(chosen), path, full_size=full_size)

        from ..run.batch import chosen_classes

        settings = {"classes": class_names, "top": top, "scales": scales, "max_size": max_size}
        batch.run(runner, settings, heatmap_picture)
        return
    image, out = single_image(images, out)
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
            arrays["whole_image"] = np.array([level.whole_image for level in result.levels])
            with open(others.pop(0), "wb") as file:
                np.savez(file, **arrays)
    _say_scaled(report, result.image_size, result.scales, max_size)
    scales_text = ", ".join(f"{lv.scale:.2g}" for lv in result.levels if not lv.whole_image)
    if any(level.whole_image for level in result.levels):
        scales_text += " and the whole image"
    report.line(f"wrote {', '.join(map(str, paths))}: scales {scales_text}")
    for label in shown.classes:
        peak = shown.peak(label)
        where = "the whole image" if peak.whole_image else f"scale {peak.scale:.2g}"
        report.line(f"{label}: peak {peak.score:.3f} at x={peak.x:.0f}, y={peak.y:.0f} ({where})")


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
    score_threshold: float,
    iou_threshold: float,
    scales: tuple[float, ...] | None,
    max_size: int,
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
    from ..run import detect as run_detect
    from ..run.images import read_image
    from ..run.render import save_detections

    settings: dict[str, Any] = {
        "scales": scales,
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "max_size": max_size,
    }
    batch = Batch.of("detect", model, images, jsonl, out_dir, coco, resume, force, quiet, ray)
    if batch is not None:
        batch.refuse_single_outputs(out=out, json=json_path)
        runner = _open(model, batch.report, **options)
        batch.run(
            runner, settings, lambda item, path: save_detections(item.pixels, item.result, path)
        )
        return
    if coco is not None:
        raise Fc2ConvError("--coco is for many images (with --jsonl); use --json for one")
    image, out = single_image(images, out)
    paths = _check_outputs(out, [json_path], force)
    report = Reporter(quiet)
    runner = _open(model, report, **options)
    pixels, size = read_image(image, max_size)
    with report.step("detecting over the image pyramid"):
        found = run_detect(runner, pixels, image_size=size, **settings)
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


def single_image(images: tuple[str, ...], out: Path | None) -> tuple[str, Path]:
    """The one image of a single-image run, and its --out, which it needs."""
    image = images[0]
    if not Path(image).is_file():
        raise Fc2ConvError(f"{image} does not exist; check the path")
    if out is None:
        raise click.UsageError(
            "one image needs --out PICTURE (e.g. --out result.png); runs of many images write "
            "--jsonl FILE and/or --out-dir FOLDER"
        )
    return image, out


@dataclass
class Batch:
    """A run over many images: outputs checked first, results streamed to JSON Lines (and
    pictures, and a COCO file at the end), a progress bar, a summary, exit code 1 if any image
    failed, and a valid file of what finished when interrupted."""

    command: str
    model: str
    images: list[Path]
    jsonl: Path | None
    out_dir: Path | None
    coco: Path | None
    resume: bool
    force: bool
    quiet: bool
    ray: str | None  #: "local" or a cluster's address; None: run here
    report: Reporter = field(init=False)

    def __post_init__(self) -> None:
        self.report = Reporter(self.quiet)

    @classmethod
    def of(
        cls,
        command: str,
        model: str,
        images: tuple[str, ...],
        jsonl: Path | None,
        out_dir: Path | None,
        coco: Path | None,
        resume: bool,
        force: bool,
        quiet: bool,
        ray: str | None = None,
    ) -> Batch | None:
        """The batch run that these arguments ask for, or None for a single-image run."""
        from ..run.batch import collect_images

        if ray is not None:
            from ..export.onnx_file import looks_like_onnx
            from ..run.ray_data import require_ray

            require_ray()
            if not (Path(model).is_file() and looks_like_onnx(model)):
                raise Fc2ConvError(
                    f"--ray runs an exported model file; export {model} first "
                    f"(fc2conv {model} --out {model}_fcn.onnx)"
                )
            if jsonl is None or out_dir is not None:
                raise Fc2ConvError(
                    "--ray writes --jsonl (and --coco); pictures (--out-dir) are made locally"
                )

        first = Path(images[0])
        single = (
            len(images) == 1
            and not images[0].startswith("@")
            and (first.is_file() or not (first.is_dir() or glob.has_magic(images[0])))
        )  # a missing file too: single_image says so
        if single and jsonl is None and out_dir is None:
            if resume:
                raise Fc2ConvError("--resume goes with --jsonl (many images)")
            return None
        if jsonl is None and out_dir is None:
            raise click.UsageError("many images need --jsonl FILE and/or --out-dir FOLDER")
        if resume and jsonl is None:
            raise Fc2ConvError("--resume needs the --jsonl file of the run to resume")
        if coco is not None and jsonl is None:
            raise Fc2ConvError("--coco is written from the --jsonl results; give --jsonl too")
        batch = cls(
            command, model, collect_images(images), jsonl, out_dir, coco, resume, force, quiet, ray
        )
        batch.check_outputs()
        return batch

    def refuse_single_outputs(self, **given: Path | None) -> None:
        named = [f"--{name}" for name, value in given.items() if value is not None]
        if named:
            raise Fc2ConvError(
                f"{', '.join(named)}: for a run of one image without --jsonl or --out-dir; "
                "runs with those write pictures into --out-dir"
            )

    def check_outputs(self) -> None:
        if self.jsonl is not None:
            if self.jsonl.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
                raise Fc2ConvError(
                    f"--jsonl writes JSON Lines: name it .jsonl, not {self.jsonl.name}"
                )
            check_output(self.jsonl, self.force or self.resume)
        if self.coco is not None:
            check_output(self.coco, self.force)
            if self.jsonl is not None and self.coco.resolve() == self.jsonl.resolve():
                raise Fc2ConvError("--coco and --jsonl must name different files")
        if self.out_dir is not None:
            parent = self.out_dir.parent if str(self.out_dir.parent) else Path(".")
            if self.out_dir.exists() and not self.out_dir.is_dir():
                raise Fc2ConvError(f"--out-dir {self.out_dir} is a file; name a folder")
            if not self.out_dir.exists() and not parent.is_dir():
                raise Fc2ConvError(f"--out-dir {self.out_dir}: folder {parent} does not exist")
            writable = self.out_dir if self.out_dir.exists() else parent
            if not os.access(writable, os.W_OK):
                raise Fc2ConvError(f"--out-dir {self.out_dir}: folder {writable} is not writable")
            filled = self.out_dir.exists() and any(self.out_dir.iterdir())
            if filled and not (self.force or self.resume):
                raise Fc2ConvError(
                    f"--out-dir {self.out_dir} holds files; pass --force to write into it "
                    "(pictures of the same name are replaced)"
                )

    def picture_paths(self) -> dict[Path, Path]:
        """The picture of each image in --out-dir: its path below the images' common folder,
        with separators as '__', so that images of the same name in different folders differ;
        images that differ only in their suffix keep it (``x.png.png``, ``x.jpg.png``), and
        where names still clash (``a/b.png`` and ``a__b.png``) the later ones get ``-2``,
        ``-3``…"""
        assert self.out_dir is not None
        resolved = list(dict.fromkeys(path.resolve() for path in self.images))
        root = Path(os.path.commonpath([str(p.parent) for p in resolved])) if resolved else None
        stems = {
            path: "__".join((path.relative_to(root) if root else Path(path.name)).parts)
            for path in resolved
        }
        short = {
            path: stem.rsplit(".", 1)[0] if "." in stem else stem for path, stem in stems.items()
        }
        clash = Counter(name.lower() for name in short.values())
        suffixed = Counter(name.lower() for name in stems.values())
        pictures: dict[Path, Path] = {}
        taken: set[str] = set()
        for path in resolved:  # x.png and x.jpg: x.png.png and x.jpg.png
            keep = clash[short[path].lower()] > 1 and suffixed[stems[path].lower()] == 1
            stem = stems[path] if keep else short[path]
            name, number = stem, 1
            while name.lower() in taken:
                number += 1
                name = f"{stem}-{number}"
            taken.add(name.lower())
            pictures[path] = self.out_dir / f"{name}.png"
        return pictures

    def run(
        self, runner: Any, settings: dict[str, Any], picture: Callable[[Any, Path], None]
    ) -> None:
        """Run the command with ``settings`` over the images (here, or with --ray on a Ray
        cluster), streaming each image's record to --jsonl."""
        from ..run.batch import JsonLines, coco_detections

        thresholds = ("score_threshold", "iou_threshold")  # a resumed file must have the same
        kept: dict[str, Any] = {key: settings[key] for key in thresholds if key in settings}
        lines = JsonLines(self.jsonl, self.command, runner.name, kept) if self.jsonl else None
        done = lines.done() if lines is not None and self.resume else set()
        todo = [path for path in self.images if path.resolve() not in done]
        if lines is not None and lines.dropped_partial:
            self.report.line(
                f"{self.jsonl}: removed an unfinished last line (its image runs again)"
            )
        if done:
            self.report.line(
                f"resuming: {len(self.images) - len(todo)} of {len(self.images)} images are done"
            )
        if self.ray is not None:
            records = self.on_ray(todo, settings, runner)
        else:
            records = self.locally(runner, todo, settings, picture)
        succeeded = failed = 0
        mode = "a" if self.resume else "w"
        out = open(self.jsonl, mode, encoding="utf-8") if self.jsonl else None  # noqa: SIM115
        try:
            with progress_bar(len(todo), self.quiet) as advance:
                for line in records:
                    if out is not None:
                        out.write(json.dumps(line) + "\n")
                        out.flush()
                    if line["error"]:
                        click.echo(f"failed: {line['error']}", err=True)
                    succeeded += not line["error"]
                    failed += bool(line["error"])
                    advance()
        except KeyboardInterrupt:
            where = f"; {self.jsonl} holds their results (--resume goes on)" if self.jsonl else ""
            click.echo(f"interrupted after {succeeded + failed} images{where}", err=True)
            raise SystemExit(130) from None
        finally:
            if out is not None:
                out.close()
        if self.coco is not None and lines is not None:
            with output_files([self.coco]) as (temporary,):
                temporary.write_text(json.dumps(coco_detections(lines.records(), runner.classes)))
        written = ", ".join(str(p) for p in (self.jsonl, self.coco, self.out_dir) if p)
        self.report.line(
            f"{succeeded + failed} images: {succeeded} succeeded, {failed} failed; wrote {written}"
        )
        if failed:
            raise Fc2ConvError(
                f"{failed} of {succeeded + failed} images failed"
                + (f"; their errors are in {self.jsonl}" if self.jsonl else "")
            )

    def locally(
        self,
        runner: Any,
        todo: list[Path],
        settings: dict[str, Any],
        picture: Callable[[Any, Path], None],
    ) -> Iterator[dict[str, Any]]:
        """Records of the images run here, with a picture of each in --out-dir; nothing is
        kept once its record is handed on."""
        from ..run.batch import run_images

        pictures = {}
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            pictures = self.picture_paths()
        for item, line in run_images(self.command, runner, todo, settings):
            if item.ok and self.out_dir is not None:
                target = pictures[Path(item.path).resolve()]
                with output_files([target]) as (temporary,):
                    picture(item, temporary)
            item.pixels = item.result = None
            yield line

    def on_ray(
        self, todo: list[Path], settings: dict[str, Any], runner: Any
    ) -> Iterator[dict[str, Any]]:
        """Records of the images run on a Ray cluster (see :mod:`fc2conv.run.ray_data`), in
        the runtime and precision that ``runner`` runs in."""
        import logging

        from ..run import ray_data

        ray = ray_data.require_ray()
        if not ray.is_initialized():
            with self.report.step("starting Ray" if self.ray == "local" else f"joining {self.ray}"):
                quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
                if self.ray == "local":
                    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
                else:
                    ray.init(address=self.ray, **quiet)
            interrupt_on_sigterm()  # ray.init replaces the handler with its own exit
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        engine = {"runtime": runner.runtime, "precision": runner.precision}
        yield from ray_data.run(
            self.command, self.model, todo, workers=workers, **engine, **settings
        )


@contextmanager
def progress_bar(total: int, quiet: bool) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr (images/s, time left); nothing with --quiet or when stderr is
    not a terminal."""
    import sys

    if quiet or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    started = time.perf_counter()
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("images", total=total, rate="")
        count = 0

        def advance() -> None:
            nonlocal count
            count += 1
            rate = count / max(time.perf_counter() - started, 1e-9)
            bar.update(task, advance=1, rate=f"{rate:.2f} images/s")

        yield advance
