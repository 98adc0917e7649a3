"""Annotated video output (fc2conv.run.video_out) and the pictures it is drawn from
(fc2conv.run.render's ``figure_pixels``): codec, size, rate and frames read back with PyAV; errors
before any frame; all of the file or none."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fc2conv.errors import Fc2ConvError

#: the moving square's side and the frames' default size (width, height)
SQUARE = 16
SIZE = (160, 120)


@pytest.fixture
def av() -> Any:
    return pytest.importorskip("av")


def square_frame(
    index: int, size: tuple[int, int] = SIZE
) -> tuple[np.ndarray, tuple[float, float]]:
    """Black with a white square that moves right and down by frame; the square's centre (x, y)."""
    width, height = size
    frame = np.zeros((height, width, 3), np.uint8)
    left = 4 + index * (width - SQUARE - 8) // 11
    top = 4 + index * (height - SQUARE - 8) // 22
    frame[top : top + SQUARE, left : left + SQUARE] = 255
    return frame, (left + (SQUARE - 1) / 2, top + (SQUARE - 1) / 2)


def write_squares(path: Path, size: tuple[int, int] = SIZE, fps: float = 5, **kwargs: Any) -> Any:
    from fc2conv.run.video_out import VideoWriter

    centres = []
    with VideoWriter(path, fps, **kwargs) as video:
        for index in range(12):
            frame, centre = square_frame(index, size)
            video.write(frame)
            centres.append(centre)
    return video, centres


def read_back(av: Any, path: Path) -> tuple[Any, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return stream, frames


def centre(frame: np.ndarray, side: int = SQUARE) -> tuple[float, float]:
    """The bright square's centre in a decoded frame, and that it is about the square's size."""
    ys, xs = np.nonzero(frame.mean(axis=2) > 128)
    assert abs(len(xs) - side * side) < 0.25 * side * side, len(xs)
    return float(xs.mean()), float(ys.mean())


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize(
    ("name", "codec"),
    [("out.mp4", "h264"), ("out.mkv", "h264"), ("out.mov", "h264"), ("out.avi", "mpeg4")],
)
def test_video_frames_size_rate_codec_and_motion_read_back(
    av: Any, tmp_path: Path, name: str, codec: str
) -> None:
    """12 frames at 5 fps read back as 12 frames of the same size at 5 fps in the codec chosen
    for the container, the square where it was drawn (within 1.5 px: the codecs are lossy)."""
    video, drawn = write_squares(tmp_path / name)
    assert (video.codec.name, video.codec.fallback, video.frames) == (codec, None, 12)
    stream, frames = read_back(av, tmp_path / name)
    assert stream.codec_context.name == codec
    assert stream.average_rate == 5
    assert (stream.width, stream.height) == SIZE
    assert len(frames) == 12
    for frame, (x, y) in zip(frames, drawn, strict=True):
        assert frame.shape == (SIZE[1], SIZE[0], 3)
        found_x, found_y = centre(frame)
        assert abs(found_x - x) < 1.5 and abs(found_y - y) < 1.5, ((found_x, found_y), (x, y))
    assert leftovers(tmp_path) == [name]


def test_webm_video_is_vp9(av: Any, tmp_path: Path) -> None:
    from fc2conv.run.video_out import check_video_output

    try:
        check_video_output(tmp_path / "out.webm")
    except Fc2ConvError as exc:
        pytest.skip(f"no VP9 here: {exc}")
    video, drawn = write_squares(tmp_path / "out.webm")
    stream, frames = read_back(av, tmp_path / "out.webm")
    assert (video.codec.name, stream.codec_context.name, len(frames)) == ("vp9", "vp9", 12)
    assert stream.average_rate == 5
    for frame, (x, y) in zip(frames, drawn, strict=True):
        found_x, found_y = centre(frame)
        assert abs(found_x - x) < 1.5 and abs(found_y - y) < 1.5


def test_odd_sizes_are_padded_to_even_with_the_last_row_and_column(av: Any, tmp_path: Path) -> None:
    """101×75 frames become 102×76: the square still in place, and the added column and row
    repeat the last ones (white frames stay white to the edge, not a black border)."""
    video, drawn = write_squares(tmp_path / "odd.mp4", size=(101, 75))
    assert (video.frame_size, video.size) == ((101, 75), (102, 76))
    stream, frames = read_back(av, tmp_path / "odd.mp4")
    assert (stream.width, stream.height, len(frames)) == (102, 76, 12)
    for frame, (x, y) in zip(frames, drawn, strict=True):
        found_x, found_y = centre(frame)
        assert abs(found_x - x) < 1.5 and abs(found_y - y) < 1.5

    from fc2conv.run.video_out import VideoWriter

    with VideoWriter(tmp_path / "white.mp4", 5) as white:
        for _ in range(3):
            white.write(np.full((75, 101, 3), 255, np.uint8))
    _, frames = read_back(av, tmp_path / "white.mp4")
    assert min(int(frame[-1].min()) for frame in frames) > 230  # the added row
    assert min(int(frame[:, -1].min()) for frame in frames) > 230  # the added column


def test_later_frames_of_another_size_are_resized_to_the_first(av: Any, tmp_path: Path) -> None:
    from fc2conv.run.video_out import VideoWriter

    with VideoWriter(tmp_path / "sizes.mkv", 5) as video:
        video.write(square_frame(0)[0])
        frame, (x, y) = square_frame(5, (320, 240))  # twice the size: the centre halves
        video.write(frame)
    stream, frames = read_back(av, tmp_path / "sizes.mkv")
    assert (stream.width, stream.height, len(frames)) == (*SIZE, 2)
    found_x, found_y = centre(frames[1], side=SQUARE // 2)
    assert abs(found_x - (x + 0.5) / 2 + 0.5) < 1.5 and abs(found_y - (y + 0.5) / 2 + 0.5) < 1.5


def test_frame_rates_are_kept_as_fractions(av: Any, tmp_path: Path) -> None:
    from fc2conv.run.video_out import video_rate

    assert video_rate(29.97) == Fraction(2997, 100)
    assert video_rate(30000 / 1001) == Fraction(30000, 1001)
    assert video_rate(Fraction(24000, 1001)) == Fraction(24000, 1001)
    assert video_rate(np.float32(25)) == 25
    for wrong in (0, -5, float("nan"), float("inf")):
        with pytest.raises(Fc2ConvError, match="frame rate"):
            video_rate(wrong)
    write_squares(tmp_path / "ntsc.mp4", fps=29.97)
    stream, frames = read_back(av, tmp_path / "ntsc.mp4")
    assert stream.average_rate == Fraction(2997, 100) and len(frames) == 12
    with av.open(str(tmp_path / "ntsc.mp4")) as container:
        packets = sorted(
            float(packet.pts * packet.time_base)
            for packet in container.demux(video=0)
            if packet.pts is not None
        )
    assert np.allclose(np.diff(packets), 100 / 2997, atol=1e-3)  # consecutive frames


@pytest.mark.parametrize(
    ("name", "codec", "message"),
    [
        ("missing/out.mp4", None, "folder .*missing does not exist"),
        ("out.xyz", None, r"no video container for '\.xyz' files; use \.mp4, \.mkv"),
        ("out", None, "no video container for files without an extension"),
        (
            "out.mp4",
            "h265",
            r"unknown video codec 'h265' for .*out\.mp4; this FFmpeg build can write h264, mpeg4",
        ),
        ("out.webm", "mpeg4", r"MPEG-4 Part 2 in a \.webm file failed .*use another codec"),
    ],
)
def test_unwritable_videos_are_refused_before_any_frame(
    av: Any, tmp_path: Path, name: str, codec: str | None, message: str
) -> None:
    """Refused by the check a command runs before the model, and by the writer's constructor
    (before any frame): one line, nothing left behind."""
    from fc2conv.run.video_out import VideoWriter, check_video_output

    with pytest.raises(Fc2ConvError, match=message) as refused:
        check_video_output(tmp_path / name, codec)
    assert "\n" not in str(refused.value)
    with pytest.raises(Fc2ConvError, match=message):
        VideoWriter(tmp_path / name, 5, codec)
    assert leftovers(tmp_path) == []


def test_a_folder_is_not_a_video(av: Any, tmp_path: Path) -> None:
    from fc2conv.run.video_out import check_video_output

    (tmp_path / "out.mp4").mkdir()
    with pytest.raises(Fc2ConvError, match="it is a folder; name a video file"):
        check_video_output(tmp_path / "out.mp4")


def test_codec_names_and_encoder_names_are_taken(av: Any, tmp_path: Path) -> None:
    from fc2conv.run.video_out import check_video_output

    assert check_video_output(tmp_path / "a.mp4", "libx264").name == "h264"
    assert check_video_output(tmp_path / "a.mp4", "MPEG4").name == "mpeg4"
    assert check_video_output(tmp_path / "a.avi", "h264").name == "h264"  # asked for: kept
    assert leftovers(tmp_path) == []


def test_without_h264_the_video_is_mpeg4_and_says_why(
    av: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fc2conv.run.video_out as video_out

    missing = video_out._Codec("no-such-h264-encoder", "H.264")
    monkeypatch.setitem(video_out.VIDEO_CODECS, "h264", missing)
    video, _ = write_squares(tmp_path / "out.mp4")
    assert video.codec.name == "mpeg4"
    assert video.codec.fallback == "no H.264 encoder in this FFmpeg build: wrote MPEG-4 Part 2"
    stream, frames = read_back(av, tmp_path / "out.mp4")
    assert (stream.codec_context.name, len(frames)) == ("mpeg4", 12)
    with pytest.raises(Fc2ConvError, match=r"no H\.264 encoder .* available: mpeg4"):
        video_out.check_video_output(tmp_path / "other.mp4", "h264")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_error_while_writing_leaves_no_file_and_no_partial(
    av: Any, tmp_path: Path, error: type[BaseException]
) -> None:
    """Frames go to ``.out.partial.mp4`` next to the target; an exception (Ctrl-C too) inside
    the block removes it, and a file already at the target stays as it was."""
    from fc2conv.run.video_out import VideoWriter

    target = tmp_path / "out.mp4"
    with pytest.raises(error), VideoWriter(target, 5) as video:
        for index in range(6):
            video.write(square_frame(index)[0])
        assert leftovers(tmp_path) == [".out.partial.mp4"]
        raise error("stop")
    assert leftovers(tmp_path) == []
    target.write_bytes(b"old")
    with pytest.raises(error), VideoWriter(target, 5) as video:
        video.write(square_frame(0)[0])
        raise error("stop")
    assert leftovers(tmp_path) == ["out.mp4"] and target.read_bytes() == b"old"


def test_a_wrong_frame_or_no_frames_leave_nothing(av: Any, tmp_path: Path) -> None:
    from fc2conv.run.video_out import VideoWriter

    with (
        pytest.raises(ValueError, match=r"H×W×3 uint8"),
        VideoWriter(tmp_path / "a.mp4", 5) as video,
    ):
        video.write(square_frame(0)[0])
        video.write(np.zeros((120, 160), np.float32))
    with (
        pytest.raises(Fc2ConvError, match="no frames to write"),
        VideoWriter(tmp_path / "b.mp4", 5),
    ):
        pass
    assert leftovers(tmp_path) == []


def test_video_output_imports_without_pyav(tmp_path: Path) -> None:
    """The package (rendering and the video writer included) imports without PyAV; using the
    writer then says what to install."""
    script = (
        "import sys; sys.modules['av'] = None\n"
        "import fc2conv, fc2conv.run.render, fc2conv.run.video_out as v\n"
        "from fc2conv.errors import Fc2ConvError\n"
        "try:\n"
        f"    v.VideoWriter(r'{tmp_path / 'a.mp4'}', 5)\n"
        "except Fc2ConvError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "video needs PyAV: pip install 'fc2conv[video]'"


def _detections() -> Any:
    from fc2conv.run.detection import Detections

    return Detections(
        np.array([[40, 30, 300, 260], [200, 150, 620, 470], [210, 160, 400, 300]], np.float32),
        np.array([0.93, 0.71, 0.42], np.float32),
        np.array([0, 1, 1]),
        ["circle", "star"],
        {"image_size": {"width": 640, "height": 480}},
    )


def test_render_detections_pixels_are_the_saved_picture(tmp_path: Path) -> None:
    """``figure_pixels`` of ``detections_figure`` is what ``save_detections`` writes as a PNG, pixel for pixel, at
    the image's size; with boxes and without."""
    from fc2conv.run.detection import Detections
    from fc2conv.run.render import detections_figure, figure_pixels, save_detections

    image = np.random.default_rng(0).random((480, 640, 3)).astype(np.float32)
    empty = Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), ["circle"])
    for index, found in enumerate((_detections(), empty)):
        pixels = figure_pixels(detections_figure(image, found))
        save_detections(image, found, tmp_path / f"{index}.png")
        saved = np.asarray(Image.open(tmp_path / f"{index}.png").convert("RGB"))
        assert pixels.shape == (480, 640, 3) and pixels.dtype == np.uint8
        assert np.array_equal(pixels, saved)
        assert not np.array_equal(pixels, (image * 255).astype(np.uint8))  # boxes or a note drawn


def test_render_heatmaps_pixels_are_the_saved_picture(tmp_path: Path) -> None:
    from fc2conv.run.heatmaps import Heatmap
    from fc2conv.run.pyramid import Level
    from fc2conv.run.render import figure_pixels, heatmaps_figure, save_heatmaps

    scores = np.random.default_rng(1).random((3, 4, 5)).astype(np.float32)
    scores /= scores.sum(axis=0)
    ys, xs = np.mgrid[0:4, 0:5].astype(np.float32) * 16
    boxes = np.stack([xs, ys, xs + 32, ys + 32], axis=-1)
    result = Heatmap(
        [Level(1.0, scores, boxes)], ["a", "b", "c"], (96, 112), (16, 16), (32, 32), True
    )
    image = np.random.default_rng(2).random((96, 112, 3)).astype(np.float32)
    pixels = figure_pixels(heatmaps_figure(image, result, ["a", "c"], title="x.png"))
    save_heatmaps(image, result, tmp_path / "h.png", ["a", "c"], title="x.png")
    saved = np.asarray(Image.open(tmp_path / "h.png").convert("RGB"))
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, saved)


def test_render_pixels_go_into_a_video(av: Any, tmp_path: Path) -> None:
    """Drawn detections written as video frames read back as the drawing (within the lossy
    codec's error: mean below 4 of 255)."""
    from fc2conv.run.render import detections_figure, figure_pixels
    from fc2conv.run.video_out import VideoWriter

    image = np.full((480, 640, 3), 0.3, np.float32)
    pixels = figure_pixels(detections_figure(image, _detections()))
    with VideoWriter(tmp_path / "boxes.mp4", 5) as video:
        video.write(pixels)
    _, frames = read_back(av, tmp_path / "boxes.mp4")
    assert len(frames) == 1
    assert np.abs(frames[0].astype(int) - pixels).mean() < 4
