"""Annotated videos written with PyAV: H.264 where this FFmpeg build has libx264 (else MPEG-4
Part 2; VP9 in a WebM file), checked before the model runs, and put in place only when complete.
PyAV is imported only here, inside functions: the package works without it."""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np
from PIL import Image

from ..errors import Fc2ConvError
from .images import resize_bytes
from .outputs import check_output, output_files
from .video import require_av

__all__ = ["VIDEO_CODECS", "VideoCodec", "VideoWriter", "check_video_output", "video_rate"]


@dataclass(frozen=True)
class _Codec:
    encoder: str  # FFmpeg's encoder
    description: str
    options: tuple[tuple[str, str], ...] = ()


#: the codecs a video can be written in, by the names a caller passes, with FFmpeg's encoder
VIDEO_CODECS = {
    "h264": _Codec("libx264", "H.264", (("crf", "20"),)),
    "mpeg4": _Codec("mpeg4", "MPEG-4 Part 2"),
    "vp9": _Codec(
        "libvpx-vp9", "VP9", (("crf", "32"), ("deadline", "realtime"), ("cpu-used", "8"))
    ),
}
#: the codecs tried in order when none is named, by file suffix (any other suffix: ``None``);
#: AVI keeps its classic MPEG-4 Part 2 (H.264 in AVI reads back with timestamps off by one)
DEFAULT_CODECS = {".webm": ("vp9",), ".avi": ("mpeg4",), None: ("h264", "mpeg4")}
#: the containers a video file can be, as named in messages
SUFFIXES = ".mp4, .mkv, .webm, .avi, .mov"


@dataclass(frozen=True)
class VideoCodec:
    """The codec a video is written in: ``name`` (a key of :data:`VIDEO_CODECS`), FFmpeg's
    ``encoder``, and ``fallback``: when the preferred codec could not be used, one line saying
    so that a caller can print (else ``None``)."""

    name: str
    encoder: str
    description: str
    fallback: str | None = None


def video_rate(fps: float | Fraction) -> Fraction:
    """A frame rate as the fraction a container stores (29.97 → 2997/100, 30000/1001 kept)."""
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise Fc2ConvError(f"a video's frame rate must be a positive number, not {fps!r}")
    exact = fps if isinstance(fps, numbers.Rational) else float(fps)
    rate = Fraction(exact).limit_denominator(1001)
    if rate <= 0:
        raise Fc2ConvError(f"a video's frame rate must be at least 1/1001 per second, not {fps!r}")
    return rate


def _encoder_available(av: ModuleType, encoder: str) -> bool:
    try:
        av.codec.Codec(encoder, "w")
    except ValueError:  # UnknownCodecError
        return False
    return True


def _available(av: ModuleType) -> list[str]:
    return [name for name, codec in VIDEO_CODECS.items() if _encoder_available(av, codec.encoder)]


def _codec_name(codec: str) -> str:
    """A codec name or FFmpeg encoder name as a key of :data:`VIDEO_CODECS`."""
    wanted = codec.strip().lower()
    for name, known in VIDEO_CODECS.items():
        if wanted in (name, known.encoder):
            return name
    return {"h.264": "h264", "avc": "h264", "x264": "h264", "libvpx": "vp9"}.get(wanted, wanted)


def _open_stream(
    av: ModuleType, path: Path, codec: _Codec, rate: Fraction, size: tuple[int, int]
) -> tuple[Any, Any]:
    """``path`` opened for writing with one video stream of ``codec`` at ``rate`` and ``size``
    (width, height, both even)."""
    suffix = path.suffix.lower()
    options = {"movflags": "+faststart"} if suffix in (".mp4", ".mov", ".m4v") else {}
    container = av.open(str(path), "w", options=options)
    try:
        stream = container.add_stream(codec.encoder, rate=rate, options=dict(codec.options))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec.encoder == "mpeg4":  # its default of 200 kb/s blurs text: about 0.2 bit a pixel
            stream.bit_rate = max(1_000_000, int(size[0] * size[1] * float(rate) * 0.2))
        elif codec.encoder == "libvpx-vp9":
            stream.bit_rate = 0  # constant quality (crf)
    except BaseException:
        container.close()
        raise
    return container, stream


def _probe(av: ModuleType, path: Path, codec: _Codec) -> None:
    """Write one small frame with ``codec`` to a file of ``path``'s suffix next to it: the
    real test of the encoder, the container and the pair of them."""
    handle, name = tempfile.mkstemp(
        dir=path.parent if str(path.parent) else ".",
        prefix=f".{path.stem}.",
        suffix=f".probe{path.suffix}",
    )
    os.close(handle)
    probe = Path(name)
    try:
        container, stream = _open_stream(av, probe, codec, Fraction(5), (64, 64))
        try:
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts = 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        finally:
            container.close()
    finally:
        probe.unlink(missing_ok=True)


def _no_container(path: Path) -> Fc2ConvError:
    shown = f"'{path.suffix}' files" if path.suffix else "files without an extension"
    return Fc2ConvError(
        f"cannot write {path}: FFmpeg has no video container for {shown}; use {SUFFIXES}"
    )


def check_video_output(path: str | os.PathLike, codec: str | None = None) -> VideoCodec:
    """Refuse, before any work, a video that cannot be written to ``path`` — a missing or
    read-only folder, an extension FFmpeg has no container for, an unknown codec or one the
    container does not take — by writing one small frame next to it; the codec to write in.
    Without ``codec``: VP9 for ``.webm``, MPEG-4 Part 2 for ``.avi``, else H.264, or MPEG-4
    Part 2 where H.264 cannot be written (``fallback`` says why). An existing file at ``path``
    is replaced: callers that refuse to replace one check with :func:`.check_output` first."""
    path = Path(path)
    check_output(path, force=True, kind="video file")
    av = require_av()
    if codec is not None:
        name = _codec_name(codec)
        available = _available(av)
        if name not in VIDEO_CODECS:
            raise Fc2ConvError(
                f"unknown video codec {codec!r} for {path}; this FFmpeg build can write "
                f"{', '.join(available) or 'none of h264, mpeg4, vp9'}"
            )
        if name not in available:
            known = VIDEO_CODECS[name]
            raise Fc2ConvError(
                f"no {known.description} encoder ({known.encoder}) in this FFmpeg build; "
                f"available: {', '.join(available) or 'none of h264, mpeg4, vp9'}"
            )
        candidates: tuple[str, ...] = (name,)
    else:
        candidates = DEFAULT_CODECS.get(path.suffix.lower(), DEFAULT_CODECS[None])
    skipped: list[str] = []
    failure: Exception | None = None
    for name in candidates:
        known = VIDEO_CODECS[name]
        if not _encoder_available(av, known.encoder):
            skipped.append(f"no {known.description} encoder in this FFmpeg build")
            continue
        try:
            _probe(av, path, known)
        except (av.FFmpegError, ValueError, OSError) as exc:  # the encoder or the muxer refused
            if isinstance(exc, ValueError) and "output format" in str(exc):  # from av.open
                raise _no_container(path) from exc
            failure = exc
        else:
            fallback = f"{skipped[0]}: wrote {known.description}" if skipped else None
            return VideoCodec(name, known.encoder, known.description, fallback)
        skipped.append(f"{known.description} in a {path.suffix} file failed ({failure})")
    if failure is None:  # every candidate's encoder is missing
        raise Fc2ConvError(
            f"cannot write {path}: {'; '.join(skipped)}; available: "
            f"{', '.join(_available(av)) or 'none of h264, mpeg4, vp9'}"
        )
    raise Fc2ConvError(
        f"cannot write {path}: {'; '.join(skipped)}; use another codec or {SUFFIXES}"
    ) from failure


class VideoWriter:
    """An annotated video, frame by frame: ``with VideoWriter(path, fps) as video:
    video.write(frame)`` for H×W×3 uint8 frames. The first frame sets the size (odd sides
    padded to even by repeating the last row or column; later frames of another size are
    resized to the first's); frames follow each other at ``fps``. Written to a temporary name
    next to ``path`` and moved into place when the block ends without an error, else removed.
    ``codec``: the codec chosen (:func:`check_video_output`), its ``fallback`` line if any."""

    def __init__(
        self, path: str | os.PathLike, fps: float | Fraction, codec: str | None = None
    ) -> None:
        self.path = Path(path)
        self.rate = video_rate(fps)
        self.codec = check_video_output(self.path, codec)
        self.frames = 0
        #: the first frame's (width, height), and the video's (even) size
        self.frame_size: tuple[int, int] | None = None
        self.size: tuple[int, int] | None = None
        self._av = require_av()
        self._container: Any = None
        self._stream: Any = None
        self._closed = False
        self._outputs = ExitStack()
        (self._partial,) = self._outputs.enter_context(output_files([self.path]))

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray) -> None:
        """Append one H×W×3 uint8 RGB frame."""
        if self._closed:
            raise ValueError(f"{self.path}: the video is closed")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            shape = "×".join(map(str, frame.shape))
            raise ValueError(f"a video frame is H×W×3 uint8 (RGB), not {shape} {frame.dtype}")
        try:
            if self._container is None:
                self._start(frame)
            assert self.frame_size is not None and self.size is not None
            width, height = self.frame_size
            if frame.shape[:2] != (height, width):
                frame = resize_bytes(Image.fromarray(frame), (height, width))
            pad_rows, pad_columns = self.size[1] - height, self.size[0] - width
            if pad_rows or pad_columns:
                frame = np.pad(frame, ((0, pad_rows), (0, pad_columns), (0, 0)), mode="edge")
            picture = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture.pts = self.frames
            picture.time_base = 1 / self.rate
            self._container.mux(self._stream.encode(picture))
        except BaseException:
            self.abort()
            raise
        self.frames += 1

    def _start(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        self.frame_size = (width, height)
        self.size = (width + width % 2, height + height % 2)
        known = VIDEO_CODECS[self.codec.name]
        self._container, self._stream = _open_stream(
            self._av, self._partial, known, self.rate, self.size
        )
        self._container.start_encoding()  # the file and its header now, not after the lookahead

    def close(self) -> None:
        """Finish the video (the encoder's last frames, the container's index) and move it to
        ``path``. A video without frames is an error, and nothing is written."""
        if self._closed:
            return
        try:
            if self._container is None:
                raise Fc2ConvError(f"no frames to write to {self.path}; nothing was written")
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None
        except BaseException as exc:
            self.abort(exc)
            raise
        self._closed = True
        self._outputs.close()  # the temporary file to its place

    def abort(self, exc: BaseException | None = None) -> None:
        """Stop without a video: the temporary file is removed."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._container is not None:
                self._container.close()
        except Exception:  # the file is removed anyway; the first error is the one raised
            pass
        finally:
            self._container = None
            error = exc or RuntimeError("video aborted")
            self._outputs.__exit__(type(error), error, error.__traceback__)
