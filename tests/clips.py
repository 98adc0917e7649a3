"""Clips the video tests write with PyAV: a shape of the bundled model's scenes moving across a
plain background, so that where it is in each frame is known."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from fc2conv.shapes.scenes import draw_scene

WIDTH, HEIGHT = 320, 240
STEP = 6  #: pixels the shape moves right per frame


def moving_shape(seed: int = 701) -> tuple[np.ndarray, int, tuple[float, ...]]:
    """A one-shape scene: its pixels, the shape's label and box (x1, y1, x2, y2)."""
    scene = draw_scene(seed, width=WIDTH, height=HEIGHT, count=(1, 1), sizes=(60, 70))
    return scene.image, scene.labels[0], scene.boxes[0]


def frame_at(index: int, seed: int = 701) -> tuple[np.ndarray, tuple[float, ...]]:
    """Frame ``index`` of the clip: the scene shifted right by STEP per frame (wrapping), and
    the shape's box there."""
    image, _, box = moving_shape(seed)
    shift = (STEP * index) % WIDTH
    x1, y1, x2, y2 = box
    return np.roll(image, shift, axis=1), (x1 + shift, y1, x2 + shift, y2)


def write_clip(
    path: Path, frames: int, fps: int | Fraction = 10, times: list[float] | None = None
) -> Path:
    """A clip of ``frames`` frames at ``fps`` (H.264 in mp4/mkv, MPEG-4 in avi); ``times``:
    each frame's presentation time in seconds instead (a variable frame rate)."""
    import av

    codec = "mpeg4" if path.suffix == ".avi" else "libx264"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if times is not None:  # each frame's own time, in milliseconds
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_at(index)[0], format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[index] * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
