"""Many images, one at a time: heatmaps or detections over a collection, with images decoded
ahead on a worker thread while the model runs, and nothing kept once a result is handed on.

``collect_images`` turns what a user names (files, folders, globs, ``@list.txt``) into paths;
``heatmap_many`` and ``detect_many`` yield one :class:`ImageResult` per path, in order; an image
that cannot be read or is too small gives a result with its error, and the run goes on.
``JsonLines`` writes results as they come (one flushed line each, so an interrupted run leaves
a valid file), and reads them back for ``--resume`` and the COCO file.
"""

from __future__ import annotations

import glob
import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Full, Queue
from typing import Any

import numpy as np

from ..errors import Fc2ConvError
from .detection import Detections, detect
from .heatmaps import ClassChoice, Heatmap, heatmap
from .images import DEFAULT_MAX_PIXELS, read_image, size_from_json, size_json
from .pyramid import DEFAULT_MAX_SIZE
from .runner import Runner, as_runner
from .tracks import Tracker
from .video import VIDEO_SUFFIXES, Sampling, clip_frames, is_video

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageResult",
    "JsonLines",
    "coco_detections",
    "collect_images",
    "detect_many",
    "heatmap_many",
]

#: the file name endings a folder is searched for
IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)  # fmt: skip
#: what a folder is searched for: images and clips
INPUT_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES
#: images decoded ahead of the one the model runs on
PREFETCH = 2


def collect_images(items: Iterable[str | os.PathLike]) -> list[Path]:
    """The image and clip paths that ``items`` name: files as they are, folders searched
    recursively for images and clips (sorted), globs (``photos/*.jpg``, ``**`` for sub-folders), and
    ``@list.txt`` files with one path a line (relative to the list's folder; lines starting with
    ``#`` are comments; a listed path that does not exist is kept, and its run records the
    error). A folder without images, a glob that matches nothing, or a missing file or list
    raise Fc2ConvError."""
    found: list[Path] = []
    for item in items:
        text = str(item)
        path = Path(text)
        if text.startswith("@"):
            found.extend(_listed(Path(text[1:])))
        elif path.is_dir():
            images = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in INPUT_SUFFIXES and p.is_file()
            )
            if not images:
                endings = ", ".join(IMAGE_SUFFIXES)
                raise Fc2ConvError(
                    f"folder {path} holds no images or clips (files ending in {endings}, "
                    f"or {', '.join(VIDEO_SUFFIXES)})"
                )
            found.extend(images)
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise Fc2ConvError(f"no file matches {text}")
            found.extend(matches)
        else:
            raise Fc2ConvError(f"{text} does not exist; check the path")
    return found


def _listed(listing: Path) -> list[Path]:
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise Fc2ConvError(f"cannot read the image list {listing}: {exc}") from exc
    paths = [
        listing.parent / line.strip()
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not paths:
        raise Fc2ConvError(f"the image list {listing} names no images (one path a line)")
    return paths


@dataclass
class ImageResult:
    """One image's outcome: its ``size`` (height, width; None when it could not be read), the
    ``result`` (a Heatmap or Detections) or the ``error``, and the ``seconds`` it took (reading
    included). ``pixels`` is the image as the model saw it (for pictures); drop the result once
    used and memory stays flat."""

    path: Path
    size: tuple[int, int] | None
    seconds: float
    result: Heatmap | Detections | None = None
    error: str | None = None
    pixels: np.ndarray | None = None
    frame: FrameInfo | None = None  #: for a clip's frame: the clip, frame index and time

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class FrameInfo:
    """Where a frame comes from: its clip, index among the clip's frames and time in seconds
    (both None for a clip that could not be read on)."""

    clip: str
    index: int | None
    time: float | None


def heatmap_many(
    model: Any,
    images: Iterable[Any],
    *,
    classes: Sequence[ClassChoice] | None = None,
    scales: Sequence[float] | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    output: int | str | None = None,
    sampling: Sampling | None = None,
) -> Iterator[ImageResult]:
    """:func:`~fc2conv.run.heatmaps.heatmap` of every image (a path, or a pair of a name and
    the encoded file's bytes) and of every sampled frame of each clip (a video's path, or a
    :class:`Clip`; ``sampling`` chooses the frames of clips named by path: every frame by
    default), one :class:`ImageResult` each, in order; a frame's ``path`` is its name
    (``clip.mp4#t=12.480``) and its ``frame`` says where it comes from. The model (a
    converted model, a Runner or an .onnx file) is opened once. An image that cannot be read
    (however it fails; ``max_pixels``: see :func:`.images.read_image`) is one result with its
    error, and the run goes on; so is a clip that stops being readable, after the frames
    before the damage."""
    runner = as_runner(model, output)

    def compute(pixels: np.ndarray, size: tuple[int, int]) -> Heatmap:
        return heatmap(
            runner, pixels, classes=classes, scales=scales, max_size=max_size, image_size=size
        )

    return _each(runner, images, max_size, max_pixels, compute, sampling)


def detect_many(
    model: Any,
    images: Iterable[Any],
    *,
    scales: Sequence[float] | None = None,
    score_threshold: float = 0.6,
    iou_threshold: float = 0.3,
    max_size: int = DEFAULT_MAX_SIZE,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    output: int | str | None = None,
    classes: Sequence[str | int] | None = None,
    sampling: Sampling | None = None,
    box_fraction: float | None = None,
) -> Iterator[ImageResult]:
    """:func:`~fc2conv.run.detection.detect` on every image and sampled frame, one
    :class:`ImageResult` each, in order (as :func:`heatmap_many`). The model is opened once."""
    runner = as_runner(model, output)
    settings = {
        "scales": scales,
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "max_size": max_size,
        "classes": classes,
        "box_fraction": box_fraction,
    }

    def compute(pixels: np.ndarray, size: tuple[int, int]) -> Detections:
        return detect(runner, pixels, image_size=size, **settings)  # type: ignore[arg-type]

    return _each(runner, images, max_size, max_pixels, compute, sampling)


def _each(
    runner: Runner,
    images: Iterable[Any],
    max_size: int,
    max_pixels: int | None,
    compute: Callable[[np.ndarray, tuple[int, int]], Any],
    sampling: Sampling | None = None,
) -> Iterator[ImageResult]:
    """Each input's result, in order: images and the sampled frames of clips (a clip's path,
    or a :class:`Clip`; ``sampling`` for clips named by path), read ahead on one thread."""
    sampling = sampling or Sampling()

    def inputs() -> Iterator[Read]:
        for image in images:
            if isinstance(image, tuple) and is_video(image[0]):  # (name, the clip's bytes)
                yield from _clip_reads(Clip(Path(image[0]), sampling, data=image[1]), max_size)
            elif isinstance(image, Clip) or (not isinstance(image, tuple) and is_video(image)):
                clip = image if isinstance(image, Clip) else Clip(Path(image), sampling)
                yield from _clip_reads(clip, max_size)
            else:
                yield _image_read(image, max_size, max_pixels)

    for read in read_ahead(inputs(), PREFETCH):
        if read.error is not None:
            yield ImageResult(read.path, None, 0.0, error=read.error, frame=read.frame)
            continue
        assert read.pixels is not None and read.size is not None
        start = time.perf_counter()
        try:
            result = compute(read.pixels, read.size)
        except Fc2ConvError as exc:
            seconds = read.seconds + time.perf_counter() - start
            yield ImageResult(read.path, read.size, seconds, error=str(exc), frame=read.frame)
            continue
        seconds = read.seconds + time.perf_counter() - start
        yield ImageResult(
            read.path, read.size, seconds, result, pixels=read.pixels, frame=read.frame
        )


@dataclass
class Clip:
    """A clip to run: its path, which frames (``sampling``), and ``after``: only frames later
    than that time (a resumed run); ``data``: its bytes, where the file is not at ``path``
    (a Ray worker's)."""

    path: Path
    sampling: Sampling = field(default_factory=Sampling)
    after: float | None = None
    data: bytes | None = field(default=None, repr=False)


@dataclass
class Read:
    """One input as read: its pixels and whole size, or the error that stopped it."""

    path: Path
    pixels: np.ndarray | None = None
    size: tuple[int, int] | None = None
    seconds: float = 0.0
    error: str | None = None
    frame: FrameInfo | None = None


def _image_read(image: Any, max_size: int, max_pixels: int | None) -> Read:
    path = Path(image[0] if isinstance(image, tuple) else image)
    source: Path | io.BytesIO = path
    if isinstance(image, tuple):  # (name, encoded bytes)
        source = io.BytesIO(image[1])
        source.name = str(image[0])  # for messages
    start = time.perf_counter()
    try:
        pixels, size = read_image(source, max_size, max_pixels)
    except Fc2ConvError as exc:
        return Read(path, error=str(exc))
    except Exception as exc:  # whatever a decoder raises: this image's error only
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        return Read(path, error=f"cannot read image {path}: {reason}")
    return Read(path, pixels, size, time.perf_counter() - start)


def _clip_reads(clip: Clip, max_size: int) -> Iterator[Read]:
    """A clip's sampled frames as reads; where it cannot be read on, one read of its error,
    named by the clip (the frames before it are kept)."""
    frames = clip_frames(clip.path, clip.sampling, clip.after, clip.data)
    while True:
        start = time.perf_counter()
        try:
            frame = next(frames, None)
        except Fc2ConvError as exc:
            yield Read(clip.path, error=str(exc), frame=FrameInfo(str(clip.path), None, None))
            return
        if frame is None:
            return
        pixels, size = read_image(frame.pixels, max_size)
        info = FrameInfo(str(clip.path), frame.index, frame.time)
        yield Read(Path(frame.name), pixels, size, time.perf_counter() - start, frame=info)


def read_ahead(reads: Iterator[Read], depth: int) -> Iterator[Read]:
    """``reads`` produced on a worker thread, at most ``depth`` + 1 ahead of the consumer
    (memory stays flat); the worker stops when the consumer does."""
    queue: Queue[Read | BaseException | None] = Queue(maxsize=depth + 1)
    stop = threading.Event()

    def put(item: Read | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def work() -> None:
        try:
            for read in reads:
                if not put(read):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
            return
        put(None)

    worker = threading.Thread(target=work, name="fc2conv-read", daemon=True)
    worker.start()
    try:
        while (item := queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def record(
    item: ImageResult, command: str, model: str, data: dict[str, Any] | None
) -> dict[str, Any]:
    """One image's JSON Lines object: path, command, model, size, seconds, error, and the
    command's ``data`` (:func:`detection_data` or :func:`heatmap_data`)."""
    return {
        "path": str(item.path),
        "command": command,
        "model": model,
        "image_size": size_json(*item.size) if item.size else None,
        "seconds": round(item.seconds, 4),
        "error": item.error,
        **(
            {"clip": item.frame.clip, "frame": item.frame.index, "time": item.frame.time}
            if item.frame
            else {}
        ),
        **(data or {}),
    }


def detection_data(found: Detections) -> dict[str, Any]:
    """What a detect line holds besides the image: the boxes and how they were found."""
    settings = found.settings
    return {
        "detections": found.as_list(),
        "scales": settings.get("scales"),
        "score_threshold": settings.get("score_threshold"),
        "iou_threshold": settings.get("iou_threshold"),
        "box_fraction": settings.get("box_fraction"),
        **({"boxes": settings["boxes"]} if "boxes" in settings else {}),
    }


def chosen_classes(
    result: Heatmap, classes: Sequence[ClassChoice], top: int, background: Any = None
) -> list[Any]:
    """The classes a heatmap line and picture show: ``classes``, else the ``top`` classes
    with the background left out."""
    return list(classes) or list(result.top_classes(top, background))


def run_images(
    command: str,
    runner: Runner,
    images: Iterable[Any],
    settings: dict[str, Any],
    history: TrackHistory | None = None,
) -> Iterator[tuple[ImageResult, dict[str, Any]]]:
    """Each image's result and its JSON Lines record, for ``command`` ("detect": ``settings``
    as for :func:`detect_many`; "heatmap": as for :func:`heatmap_many`, plus the ``classes``
    and ``top`` its records show; ``every`` and ``fps`` choose a clip's frames, and ``track``
    gives each detection in a clip's frames a track id, see :mod:`.tracks`; ``history``: the
    frames a resumed run wrote before, see :func:`track_history`). The one per-image job of
    the folder run and of Ray."""
    settings = dict(settings)
    settings["sampling"] = Sampling(settings.pop("every", None), settings.pop("fps", None))
    tracks = Tracks(history) if settings.pop("track", False) else None
    if command == "detect":  # detect_many takes the classes; a heatmap's are what it shows
        classes, top = (), 4
    else:
        classes, top = settings.pop("classes", ()), settings.pop("top", 4)
    background = runner.metadata.get("background")
    if command == "detect":
        results = detect_many(runner, images, **settings)
    else:
        results = heatmap_many(runner, images, **settings)
    for item in results:
        data = None
        if item.ok and command == "detect":
            data = detection_data(item.result)  # type: ignore[arg-type]
            if tracks is not None and item.frame is not None:
                tracks.name(item.frame.clip, item.result, data["detections"])  # type: ignore[arg-type]
        elif item.ok:
            chosen = chosen_classes(item.result, classes, top, background)  # type: ignore[arg-type]
            data = item.result.as_dict(chosen, max(top, 5), background)  # type: ignore[union-attr]
        yield item, record(item, command, runner.name, data)


#: each clip's frames as written (resolved clip path: each frame's boxes and labels, in order)
TrackHistory = dict[str, list[tuple[np.ndarray, np.ndarray]]]


def track_history(lines: JsonLines) -> TrackHistory:
    """The detections of each clip's frames that a results file holds, in order: what a
    resumed run's trackers replay, so that track ids go on as in an uninterrupted run (up to
    the records' rounding of boxes to 0.1 pixel)."""
    history: TrackHistory = {}
    for record in lines.records():
        if record.get("clip") is None or record.get("error"):
            continue
        found = record.get("detections") or []
        boxes = np.array([item["box"] for item in found], np.float64).reshape(-1, 4)
        labels = np.array([item["label"] for item in found], np.int64)
        history.setdefault(str(Path(record["clip"]).resolve()), []).append((boxes, labels))
    return history


class Tracks:
    """Track ids for the detections of each clip's frames, one :class:`.tracks.Tracker` a
    clip (a clip's frames come in order, one clip after another); a clip that ``history``
    holds goes on from its frames there."""

    def __init__(self, history: TrackHistory | None = None) -> None:
        self.clip: str | None = None
        self.tracker = Tracker()
        self.history = history or {}

    def name(self, clip: str, found: Detections, detections: list[dict[str, Any]]) -> None:
        """Give each of a frame's ``detections`` (its record's) the ``track`` of its box."""
        if clip != self.clip:
            self.clip, self.tracker = clip, Tracker()
            for boxes, labels in self.history.get(str(Path(clip).resolve()), []):
                self.tracker.update(boxes, labels)
        ids = self.tracker.update(np.asarray(found.boxes), np.asarray(found.labels))
        for detection, track in zip(detections, ids, strict=True):
            detection["track"] = track


class JsonLines:
    """Results as JSON Lines: one object per image, written and flushed as it comes. Each
    holds the command and model, so that ``resume`` refuses a file of another run."""

    def __init__(
        self, path: Path, command: str, model: str, settings: dict[str, Any] | None = None
    ) -> None:
        self.path, self.command, self.model = path, command, model
        self.settings = settings or {}  #: what a resumed file's records must hold too
        self.dropped_partial = False  #: whether :meth:`done` cut off an unfinished last line

    def done(self) -> set[Path]:
        """The images already in the file, resolved (for ``--resume``); refuses a file written
        by another command or model, or with other settings (e.g. thresholds). Once the file is
        accepted, a last line cut short (a run killed while writing it) is removed, and a
        complete last line gets the newline it lacks."""
        if not self.path.exists():
            return set()
        unended = _unended_last_line(self.path)
        cut = unended[0] if unended and not unended[1] else None
        seen = set()
        wanted = {"command": self.command, "model": self.model, **self.settings}
        for number, record in enumerate(self.records(end=cut), 1):
            for key, want in wanted.items():
                required = key in ("command", "model")  # settings: where the record has them
                if (required or key in record) and record.get(key) != want:
                    key, got, want = _first_difference(key, record.get(key), want)
                    raise Fc2ConvError(
                        f"cannot resume {self.path}: line {number} was written with "
                        f"{key} {_shown(got)}, this run has {key} {_shown(want)}; "
                        "write to another file or run with the same settings"
                    )
            seen.add(Path(record["path"]).resolve())
        if unended:
            with open(self.path, "rb+") as file:
                if cut is not None:
                    file.truncate(cut)
                    self.dropped_partial = True
                else:
                    file.seek(0, os.SEEK_END)
                    file.write(b"\n")
        return seen

    def records(self, end: int | None = None) -> Iterator[dict[str, Any]]:
        """The records of the file (up to byte ``end``), each checked to be an image's."""
        with open(self.path, "rb") as lines:
            position = 0
            for number, raw in enumerate(lines, 1):
                if end is not None and position >= end:
                    return
                position += len(raw)
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except ValueError as exc:  # not JSON, or not UTF-8
                    raise Fc2ConvError(
                        f"{self.path} line {number} is not JSON ({exc}); it is not a results file"
                    ) from exc
                if not isinstance(record, dict) or "path" not in record:
                    raise Fc2ConvError(f"{self.path} line {number} is not an image's result")
                yield record

    def record(self, item: ImageResult, data: dict[str, Any] | None) -> dict[str, Any]:
        return record(item, self.command, self.model, data)


def _first_difference(key: str, got: Any, want: Any) -> tuple[str, Any, Any]:
    """The first setting inside two differing dictionaries that differs (the key itself
    otherwise), so that a refusal names it."""
    if isinstance(got, dict) and isinstance(want, dict):
        for inner in dict.fromkeys([*want, *got]):
            if got.get(inner) != want.get(inner):
                return inner, got.get(inner), want.get(inner)
    return key, got, want


def _shown(value: Any) -> str:
    """A setting's value as a message shows it: strings quoted, lists as 1, 2, 3."""
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return "none" if value is None else repr(value)


def _unended_last_line(path: Path) -> tuple[int, bool] | None:
    """Where the file's last line starts, and whether it is complete JSON, if it lacks its
    newline (None: the file is empty or ends with one)."""
    with open(path, "rb") as file:
        end = file.seek(0, os.SEEK_END)
        if end == 0:
            return None
        file.seek(end - 1)
        if file.read(1) == b"\n":
            return None
        start = position = end
        while position > 0:  # back to the last newline, a block at a time
            block = min(1 << 16, position)
            position -= block
            file.seek(position)
            newline = file.read(block).rfind(b"\n")
            if newline >= 0:
                start = position + newline + 1
                break
        else:
            start = 0  # the file is one line
        file.seek(start)
        tail = file.read()
    try:
        json.loads(tail)
    except ValueError:
        return start, False
    return start, True


def coco_detections(records: Iterable[dict[str, Any]], classes: list[str]) -> dict[str, Any]:
    """Detections from JSON Lines records as a COCO dataset (images, categories, annotations
    with a score; boxes as x, y, width, height). Images that failed are left out."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for record in records:
        if record.get("error") or not record.get("image_size"):
            continue
        image_id = len(images) + 1
        height, width = size_from_json(record["image_size"])
        images.append(
            {"id": image_id, "file_name": record["path"], "height": height, "width": width}
        )
        for found in record.get("detections", []):
            x1, y1, x2, y2 = found["box"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(found["label"]) + 1,
                    "bbox": [x1, y1, round(x2 - x1, 1), round(y2 - y1, 1)],
                    "area": round((x2 - x1) * (y2 - y1), 1),
                    "score": found["score"],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(classes)]
    return {"images": images, "annotations": annotations, "categories": categories}
