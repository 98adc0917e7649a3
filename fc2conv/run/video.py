"""Video clips as inputs: their frames, decoded with PyAV (FFmpeg inside its wheels: mp4, mkv,
webm, avi, mov and whatever else FFmpeg reads), every frame or sampled by presentation time.

A frame is named ``clip.mp4#t=12.480`` (its time in seconds, as in a media fragment URI): that
name is its record's ``path`` and its COCO ``file_name``, and ``--resume`` goes on after the
last time a clip's records hold. Sampling by time (``every`` seconds, or ``fps`` frames a
second) takes the first frame at or after each due time, so that a clip of variable frame rate
is sampled evenly. Nothing here imports PyTorch.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Fc2ConvError

__all__ = [
    "VIDEO_SUFFIXES",
    "ClipFrame",
    "Sampling",
    "clip_frames",
    "clip_rate",
    "expected_frames",
    "frame_name",
    "is_video",
    "split_frame_name",
]

#: the file name endings read as clips (a folder is searched for these too)
VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".ts", ".wmv", ".flv",
)  # fmt: skip
#: a clip whose frames end this much before its stated duration is reported as cut short
#: (in frames of the clip's own rate, and at least this many seconds)
CUT_FRAMES, CUT_SECONDS = 3, 0.5


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a clip (by its ending, see :data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def frame_name(clip: str | os.PathLike, seconds: float) -> str:
    """A frame's name: ``clip.mp4#t=12.480``."""
    return f"{clip}#t={seconds:.3f}"


def split_frame_name(name: str) -> tuple[str, float] | None:
    """(clip, seconds) of a frame's name; None for an image's path."""
    clip, marker, seconds = str(name).rpartition("#t=")
    if not marker or not is_video(clip):
        return None
    try:
        return clip, float(seconds)
    except ValueError:
        return None


@dataclass(frozen=True)
class Sampling:
    """Which frames of a clip run: every frame (neither set), one every ``every`` seconds, or
    ``fps`` a second, by presentation time."""

    every: float | None = None
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.every is not None and self.fps is not None:
            raise Fc2ConvError("--every and --fps both choose frames; pass one of them")
        for flag, value in (("--every", self.every), ("--fps", self.fps)):
            if value is not None and not (math.isfinite(value) and value > 0):
                unit = "seconds" if flag == "--every" else "frames a second"
                raise Fc2ConvError(f"{flag} must be a positive number of {unit}, got {value:g}")

    @property
    def interval(self) -> float | None:
        """Seconds between sampled frames (None: every frame)."""
        if self.fps is not None:
            return 1 / self.fps
        return self.every

    def as_json(self) -> dict[str, float | None]:
        return {"every": self.every, "fps": self.fps}


@dataclass
class ClipFrame:
    """One sampled frame: its clip, its index among the clip's decoded frames, its
    presentation time in seconds, and its pixels (H×W×3 bytes, RGB)."""

    clip: Path
    index: int
    time: float
    pixels: np.ndarray

    @property
    def name(self) -> str:
        return frame_name(self.clip, self.time)


class ClipError(Fc2ConvError):
    """A clip that cannot be read, or stops being readable (``frames`` were read before)."""

    def __init__(self, message: str, frames: int = 0) -> None:
        super().__init__(message)
        self.frames = frames


def require_av() -> Any:
    """The av module (PyAV), or a one-line error that says how to install it."""
    try:
        import av
    except ImportError as exc:
        raise Fc2ConvError("video needs PyAV: pip install 'fc2conv[video]'") from exc
    return av


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def clip_frames(
    clip: str | os.PathLike,
    sampling: Sampling = Sampling(),
    after: float | None = None,
    data: bytes | None = None,
) -> Iterator[ClipFrame]:
    """The sampled frames of ``clip``, in order, decoded one at a time (``after``: only those
    later than that time, for a resumed run; the frames chosen are the same as without it;
    ``data``: the clip's bytes, read from memory instead of the file, frames still named by
    ``clip``). A file that is not a clip, has no video stream, or is damaged raises
    :class:`ClipError` once the frames before the damage are yielded."""
    av = require_av()
    path = Path(clip)
    try:
        container = av.open(io.BytesIO(data) if data is not None else str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise ClipError(f"cannot read video {path}: {_reason(exc)}") from exc
    read = 0
    last = None
    try:
        if not container.streams.video:
            raise ClipError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        interval, due = sampling.interval, None
        try:
            for index, frame in enumerate(container.decode(stream)):
                seconds = frame.time if frame.time is not None else index / (rate or 1)
                last = seconds
                if interval is not None:
                    if due is not None and seconds < due - 1e-6:
                        continue
                    due = (due if due is not None else seconds) + interval
                    while due <= seconds + 1e-6:  # a gap in the clip: the next due time after it
                        due += interval
                if after is not None and round(seconds, 3) <= after:
                    continue
                read += 1
                yield ClipFrame(path, index, round(seconds, 3), frame.to_ndarray(format="rgb24"))
        except (av.error.FFmpegError, ValueError) as exc:
            where = f" after {last:.3f} s" if last is not None else ""
            raise ClipError(f"video {path} is damaged{where}: {_reason(exc)}", read) from exc
        _check_complete(path, container, stream, last, rate, read)
    finally:
        container.close()


def _check_complete(
    path: Path, container: Any, stream: Any, last: float | None, rate: float | None, read: int
) -> None:
    """Refuse a clip whose frames end well before the duration it states (a file cut short
    that the demuxer reads without an error)."""
    if last is None:
        raise ClipError(f"video {path} has no frames that can be decoded", read)
    if stream.duration is not None and stream.time_base is not None:
        stated = float(stream.duration * stream.time_base) + float(stream.start_time or 0) * float(
            stream.time_base
        )
    elif container.duration is not None and len(container.streams) == 1:
        stated = container.duration / 1_000_000  # the file's: no audio that may last longer
    else:
        return
    slack = max(CUT_SECONDS, CUT_FRAMES / rate if rate else CUT_SECONDS)
    if last < stated - slack:
        raise ClipError(
            f"video {path} is cut short: its frames end at {last:.3f} s of the {stated:.3f} s "
            "it states",
            read,
        )


def expected_frames(clip: str | os.PathLike, sampling: Sampling, after: float | None = None) -> int:
    """About how many frames :func:`clip_frames` will give (from the clip's stated duration and
    frame rate; 0 where it states neither or cannot be opened): for a progress bar's total."""
    av = require_av()
    try:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1_000_000
            else:
                return int(stream.frames or 0)
    except (av.error.FFmpegError, OSError, ValueError, IndexError):
        return 0
    seconds = max(0.0, seconds - (after or 0.0))
    interval = sampling.interval
    if interval is None or (rate and interval < 1 / rate):
        return round(seconds * rate)
    return math.ceil(seconds / interval)


def clip_rate(clip: str | os.PathLike, sampling: Sampling) -> float:
    """Frames a second of the clip's sampled frames: the sampling's rate, else the clip's own
    (average; 25 where it states none): what an annotated video of them plays at."""
    if sampling.interval is not None:
        return 1 / sampling.interval
    av = require_av()
    try:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            return float(stream.average_rate or stream.guessed_rate or 25)
    except (av.error.FFmpegError, OSError, ValueError, IndexError):
        return 25.0
