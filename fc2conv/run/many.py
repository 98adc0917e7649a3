"""A run over many images (files, folders, globs, ``@list.txt``): :class:`ManyImages`.

Every output is checked before the model runs; each image's record is streamed to JSON Lines as
it finishes (``--resume`` skips those already there), with a picture per image in a folder and a
COCO file at the end; an image that fails is one recorded error and the run goes on; an
interrupted run leaves a valid file of what finished. The images run here, or with ``ray`` on a
Ray cluster (:mod:`.ray_data`). What ``fc2conv heatmap|detect`` runs for many images.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Fc2ConvError, RunInterrupted
from ..progress import SILENT, Progress
from .batch import Clip
from .outputs import check_output, interrupt_on_sigterm, output_files
from .video import Sampling, clip_rate, expected_frames, is_video, split_frame_name
from .video_out import check_video_output

__all__ = ["RESULT_SETTINGS", "ManyImages", "ManySummary", "picture_writer", "run_identity"]

#: the settings that change an image's results (so a resumed file must have been written with
#: the same); ``max_pixels`` only decides which images can be read, and may change
RESULT_SETTINGS = (
    "scales", "max_size", "score_threshold", "iou_threshold", "box_fraction", "classes", "top",
    "every", "fps", "track",
)  # fmt: skip

#: what writes one image's picture: (the image's result item, the path to write)
Picture = Callable[[Any, Path], None]


@dataclass
class ManySummary:
    """How a run over many images ended, and what it wrote."""

    succeeded: int
    failed: int
    written: list[Path]
    jsonl: Path | None = None
    unit: str = "images"  #: what was run: images, or frames where clips were among them

    def __str__(self) -> str:
        written = ", ".join(map(str, self.written))
        return (
            f"{self.succeeded + self.failed} {self.unit}: {self.succeeded} succeeded, "
            f"{self.failed} failed; wrote {written}"
        )

    def check(self) -> None:
        """Raise Fc2ConvError when any image or frame failed (their errors are in the JSON
        Lines)."""
        if self.failed:
            raise Fc2ConvError(
                f"{self.failed} of {self.succeeded + self.failed} {self.unit} failed"
                + (f"; their errors are in {self.jsonl}" if self.jsonl else "")
            )


@dataclass
class ManyImages:
    """``command`` ("heatmap" or "detect") over ``images`` (paths, as
    :func:`.batch.collect_images` finds them), writing a JSON line per image to ``jsonl``, a
    picture per image into ``out_dir`` and, for detect, a COCO file ``coco`` at the end.
    ``resume`` skips the images already in ``jsonl`` (which must have the same settings);
    ``force`` replaces outputs; ``ray`` ("local" or a cluster's address) runs the images on
    Ray, which needs ``model`` to be an exported .onnx file. A clip's frames are records too, and
    its annotated video goes to ``out_video`` (one clip) or into ``out_dir`` (``clip.mp4``). The outputs are checked here, before
    any model is opened."""

    command: str
    images: list[Path]
    jsonl: Path | None = None
    out_dir: Path | None = None
    coco: Path | None = None
    out_video: Path | None = None  #: the annotated video of the one clip among the inputs
    resume: bool = False
    force: bool = False
    ray: str | None = None
    model: str | None = None  #: the model file, for ``ray``
    progress: Progress = field(default=SILENT, repr=False)
    quiet: bool = True  #: no progress bar

    def __post_init__(self) -> None:
        self.jsonl = Path(self.jsonl) if self.jsonl is not None else None
        self.out_dir = Path(self.out_dir) if self.out_dir is not None else None
        self.coco = Path(self.coco) if self.coco is not None else None
        self.out_video = Path(self.out_video) if self.out_video is not None else None
        if self.ray is not None:
            from ..export.onnx_file import looks_like_onnx
            from .ray_data import require_ray

            require_ray()
            model = self.model
            if not (model and Path(model).is_file() and looks_like_onnx(model)):
                raise Fc2ConvError(
                    f"--ray runs an exported model file; export {model} first "
                    f"(fc2conv {model} --out {model}_fcn.onnx)"
                )
            if self.jsonl is None or self.out_dir is not None:
                raise Fc2ConvError(
                    "--ray writes --jsonl (and --coco); pictures (--out-dir) are made locally"
                )
        clips = [path for path in self.images if is_video(path)]
        if self.out_video is not None and len(clips) != 1:
            raise Fc2ConvError(
                f"--out-video is the annotated video of one clip, and the inputs hold "
                f"{len(clips)}; write one per clip with --out-dir FOLDER"
            )
        if self.resume and clips and (self.out_video or self.out_dir):
            raise Fc2ConvError(
                "--resume goes on with the --jsonl records, not with annotated videos: drop "
                "--out-video/--out-dir, or run the clips again without --resume"
            )
        if self.jsonl is None and self.out_dir is None and self.out_video is None:
            raise Fc2ConvError("many images need --jsonl FILE and/or --out-dir FOLDER")
        if self.resume and self.jsonl is None:
            raise Fc2ConvError("--resume needs the --jsonl file of the run to resume")
        if self.coco is not None and self.jsonl is None:
            raise Fc2ConvError("--coco is written from the --jsonl results; give --jsonl too")
        self.check_outputs()

    def check_outputs(self) -> None:
        """Refuse outputs that cannot be written, or would be replaced without ``force``."""
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
            if any(is_video(path) for path in self.images):  # its clips' videos can be written
                check_video_output(writable / ".fc2conv-video-check.mp4")
            filled = self.out_dir.exists() and any(self.out_dir.iterdir())
            if filled and not (self.force or self.resume):
                raise Fc2ConvError(
                    f"--out-dir {self.out_dir} holds files; pass --force to write into it "
                    "(pictures of the same name are replaced)"
                )

        if self.out_video is not None:
            check_output(self.out_video, self.force)
            check_video_output(self.out_video)

    def picture_paths(self) -> dict[Path, Path]:
        """The picture of each image in ``out_dir``: its path below the images' common folder,
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
            pictures[path] = self.out_dir / f"{name}.{'mp4' if is_video(path) else 'png'}"
        return pictures

    def run(
        self, runner: Any, settings: dict[str, Any], picture: Picture | None = None
    ) -> ManySummary:
        """Run the command with ``settings`` (those of :func:`.heatmap` or :func:`.detect`)
        over the images, here or on Ray, streaming each image's record to ``jsonl`` and a
        ``picture`` of each (default: :func:`picture_writer`'s) into ``out_dir``. An interrupt
        (Ctrl-C) leaves ``jsonl`` valid, with what finished, and is raised again as
        :class:`~fc2conv.errors.RunInterrupted`."""
        from .batch import JsonLines, coco_detections, track_history
        from .detection import detection_labels
        from .heatmaps import class_members

        for name in settings.get("classes") or ():  # unknown names fail before the model runs
            class_members(runner.classes, name)
        picture = picture or picture_writer(self.command, runner, settings)
        drawn = drawing(self.command, runner, settings)
        lines, identity = None, None
        if self.jsonl is not None:  # what each record names, and a resumed file must match
            identity = run_identity(runner, settings, self.model)
            lines = JsonLines(self.jsonl, self.command, runner.name, {"run": identity})
        done = lines.done() if lines is not None and self.resume else set()
        history = track_history(lines) if lines and done and settings.get("track") else None
        sampling = Sampling(settings.get("every"), settings.get("fps"))
        todo = [
            _clip(path, sampling, done) if is_video(path) else path
            for path in self.images
            if path.resolve() not in done  # a clip's own record: it ended with its error
        ]
        if lines is not None and lines.dropped_partial:
            self.progress.line(
                f"{self.jsonl}: removed an unfinished last line (its image runs again)"
            )
        if done:
            left = sum(not isinstance(item, Clip) for item in todo)
            what = "inputs" if any(is_video(path) for path in self.images) else "images"
            self.progress.line(
                f"resuming: {len(self.images) - left} of {len(self.images)} {what} are done"
                + (" (clips go on after their last frame written)" if left < len(todo) else "")
            )
        if self.ray is not None:
            records = self._on_ray(todo, settings, runner)
        else:
            records = self._locally(runner, todo, settings, picture, drawn, history)
        clips = sum(isinstance(item, Clip) for item in todo)
        unit = "images" if not clips else "frames" if clips == len(todo) else "images and frames"
        total = len(todo)  # the progress bar's: clips as the frames they will give
        if not self.quiet and clips:
            total = sum(
                expected_frames(item.path, item.sampling, item.after)
                if isinstance(item, Clip)
                else 1
                for item in todo
            )
        succeeded = failed = 0
        mode = "a" if self.resume else "w"
        out = open(self.jsonl, mode, encoding="utf-8") if self.jsonl else None  # noqa: SIM115
        try:
            with progress_bar(total, self.quiet, unit) as advance:
                for line in records:
                    if out is not None:
                        out.write(json.dumps({**line, "run": identity}) + "\n")
                        out.flush()
                    if line["error"]:
                        error, path = line["error"], line["path"]
                        shown = error if path in error else f"{path}: {error}"
                        self.progress.warning(f"failed: {shown}")
                    succeeded += not line["error"]
                    failed += bool(line["error"])
                    advance()
        except KeyboardInterrupt:
            where = f"; {self.jsonl} holds their results (--resume goes on)" if self.jsonl else ""
            self.progress.warning(f"interrupted after {succeeded + failed} {unit}{where}")
            raise RunInterrupted from None
        finally:
            if out is not None:
                out.close()
        if self.coco is not None and lines is not None:
            with output_files([self.coco]) as (temporary,):
                names, _ = detection_labels(list(runner.classes), settings.get("classes"))
                temporary.write_text(json.dumps(coco_detections(lines.records(), names)))
        written = [p for p in (self.jsonl, self.coco, self.out_dir, self.out_video) if p]
        return ManySummary(succeeded, failed, written, self.jsonl, unit)

    def _locally(
        self,
        runner: Any,
        todo: list[Path | Clip],
        settings: dict[str, Any],
        picture: Picture,
        drawn: Callable[[Any], Any],
        history: Any = None,
    ) -> Iterator[dict[str, Any]]:
        """Records of the images run here, with a picture of each in ``out_dir`` and each
        clip's frames drawn into its annotated video; nothing is kept once its record is
        handed on. ``history``: the tracks a resumed file holds (:func:`.batch.track_history`)."""
        from .batch import run_images

        pictures = {}
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            pictures = self.picture_paths()
        with ClipVideos(self, pictures, settings) as videos:
            for item, line in run_images(self.command, runner, todo, settings, history):
                if item.ok and item.frame is not None:
                    videos.add(item, drawn)
                elif item.ok and self.out_dir is not None:
                    target = pictures[Path(item.path).resolve()]
                    with output_files([target]) as (temporary,):
                        picture(item, temporary)
                item.pixels = item.result = None
                yield line

    def _on_ray(
        self, todo: list[Path | Clip], settings: dict[str, Any], runner: Any
    ) -> Iterator[dict[str, Any]]:
        """Records of the images run on a Ray cluster (see :mod:`.ray_data`), in the runtime
        and precision that ``runner`` runs in; a clip is one task, its frames' records in
        order (those of a resumed clip up to its ``after`` are left out)."""
        from . import ray_data

        ray = ray_data.require_ray()
        if not ray.is_initialized():
            joining = "starting Ray" if self.ray == "local" else f"joining {self.ray}"
            with self.progress.step(joining):
                quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
                if self.ray == "local":
                    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
                else:
                    ray.init(address=self.ray, **quiet)
            interrupt_on_sigterm()  # ray.init replaces the handler with its own exit
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        engine = {"runtime": runner.runtime, "precision": runner.precision}
        assert self.model is not None
        after = {
            str(item.path.resolve()): item.after
            for item in todo
            if isinstance(item, Clip) and item.after is not None
        }
        paths = [item.path if isinstance(item, Clip) else item for item in todo]
        for line in ray_data.run(
            self.command, self.model, paths, workers=workers, **engine, **settings
        ):
            frame = split_frame_name(line["path"])
            if frame is not None:
                done = after.get(str(Path(frame[0]).resolve()))
                if done is not None and frame[1] <= done:
                    continue
            yield line


def _clip(path: Path, sampling: Sampling, done: set[Path]) -> Clip:
    """A clip to run, after the last of its frames that ``done`` holds (a resumed run)."""
    clip = str(path.resolve())
    times = [
        found[1]
        for name in done
        if (found := split_frame_name(str(name))) is not None and found[0] == clip
    ]
    return Clip(path, sampling, max(times) if times else None)


def run_identity(
    runner: Any, settings: dict[str, Any], model: str | os.PathLike | None = None
) -> dict[str, Any]:
    """What each record of a folder run names besides its image, so that ``resume`` refuses a
    file written by another run: the model file's content (SHA-256, first 16 hex digits; None
    for a model converted on the fly), its precision (an int8 file says so), the runtime and
    the precision it ran in, and every setting in :data:`RESULT_SETTINGS`, as JSON values."""
    digest = None
    if model is not None and Path(model).is_file():
        import hashlib

        sha = hashlib.sha256()
        with open(model, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                sha.update(block)
        digest = sha.hexdigest()[:16]
    identity = {
        "model_sha256": digest,
        "model_precision": runner.metadata.get("precision", "fp32"),
        "runtime": runner.runtime,
        "precision": runner.precision,
        **{key: settings[key] for key in RESULT_SETTINGS if key in settings},
    }
    return json.loads(json.dumps(identity))  # tuples as lists: as a record reads back


def drawing(
    command: str, runner: Any, settings: dict[str, Any], full_size: bool = False
) -> Callable[[Any], Any]:
    """What draws one image's picture as a matplotlib figure: its boxes (detect), or the
    heatmaps of the ``classes`` setting or the ``top`` classes (heatmap), each panel at the
    image's size with ``full_size``."""
    from .batch import chosen_classes

    def detections(item: Any) -> Any:
        from .render import detections_figure  # matplotlib: only where a picture is drawn

        return detections_figure(item.pixels, item.result)

    if command == "detect":
        return detections
    background = runner.metadata.get("background")
    names, top = tuple(settings.get("classes") or ()), int(settings.get("top", 4))

    def heatmaps(item: Any) -> Any:
        from .render import heatmaps_figure

        shown = item.result.select(chosen_classes(item.result, names, top, background))
        title = Path(item.path).name
        return heatmaps_figure(item.pixels, shown, full_size=full_size, title=title)

    return heatmaps


def picture_writer(
    command: str, runner: Any, settings: dict[str, Any], full_size: bool = False
) -> Picture:
    """What writes one image's picture (:func:`drawing`'s) to a file."""
    draw = drawing(command, runner, settings, full_size)

    def write(item: Any, path: Path) -> None:
        from .render import DPI

        draw(item).savefig(path, dpi=DPI)

    return write


class ClipVideos:
    """The annotated video of each clip of a run, its frames drawn as they come: into
    ``run.out_video`` or the clip's name in ``run.out_dir`` (``pictures``), at the sampled
    rate; each written whole when its clip ends, none left half-written."""

    def __init__(self, run: ManyImages, pictures: dict[Path, Path], settings: dict[str, Any]):
        self.run, self.pictures = run, pictures
        self.sampling = Sampling(settings.get("every"), settings.get("fps"))
        self.clip: str | None = None
        self.video: Any = None

    def target(self, clip: str) -> Path | None:
        if self.run.out_video is not None:
            return self.run.out_video
        return self.pictures.get(Path(clip).resolve())

    def add(self, item: Any, drawn: Callable[[Any], Any]) -> None:
        from .render import figure_pixels
        from .video_out import VideoWriter

        if item.frame.clip != self.clip:
            self.finish()
            self.clip, target = item.frame.clip, self.target(item.frame.clip)
            if target is not None:
                self.video = VideoWriter(target, clip_rate(item.frame.clip, self.sampling))
                if self.video.codec.fallback:
                    self.run.progress.line(self.video.codec.fallback)
        if self.video is not None:
            self.video.write(figure_pixels(drawn(item)))

    def finish(self) -> None:
        if self.video is not None:
            video, self.video = self.video, None
            video.close()

    def __enter__(self) -> ClipVideos:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if error is None:
            self.finish()
        elif self.video is not None:
            self.video.abort(error)


@contextmanager
def progress_bar(total: int, quiet: bool, unit: str = "images") -> Iterator[Callable[[], None]]:
    """A progress bar on stderr (``unit``/s, e.g. images/s or frames/s, and the time left);
    nothing with ``quiet`` or when stderr is not a terminal."""
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
        task = bar.add_task(unit, total=total, rate="")
        count = 0

        def advance() -> None:
            nonlocal count
            count += 1
            rate = count / max(time.perf_counter() - started, 1e-9)
            bar.update(task, advance=1, rate=f"{rate:.2f} {unit}/s")

        yield advance
