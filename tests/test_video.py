"""Clips as inputs: frames sampled by presentation time, one record per frame with its clip,
index and time, detections that follow a moving shape, track ids, resume after the last frame
written, and one line for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("av")

from clips import HEIGHT, WIDTH, frame_at, moving_shape, write_clip

import fc2conv
from fc2conv.cli import main
from fc2conv.errors import Fc2ConvError
from fc2conv.run.batch import Clip, collect_images
from fc2conv.run.video import Sampling, clip_frames, split_frame_name
from fc2conv.shapes.spec import CLASSES

#: frames before the shape starts to wrap around the right edge (np.roll)
WHOLE = 9


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """3 s at 10 frames a second."""
    return write_clip(tmp_path_factory.mktemp("clip") / "moving.mp4", 30, 10)


def test_frames_every_one_or_sampled_by_time(clip):
    every = list(clip_frames(clip))
    assert [f.index for f in every] == list(range(30))
    assert [f.time for f in every] == [round(i / 10, 3) for i in range(30)]
    assert every[0].pixels.shape == (HEIGHT, WIDTH, 3) and every[0].pixels.dtype == np.uint8
    assert [f.index for f in clip_frames(clip, Sampling(fps=4))] == [0, 3, 5, 8, 10, 13, 15, 18,
                                                                     20, 23, 25, 28]  # fmt: skip
    assert [f.time for f in clip_frames(clip, Sampling(every=1))] == [0.0, 1.0, 2.0]
    # resumed after 1.0 s: the same frames as the whole run's after that time
    assert [f.index for f in clip_frames(clip, Sampling(fps=4), after=1.0)] == [13, 15, 18, 20,
                                                                                23, 25, 28]  # fmt: skip
    assert split_frame_name(every[4].name) == (str(clip), 0.4)
    assert split_frame_name("photo.png#t=1.000") is None


def test_a_variable_frame_rate_is_sampled_evenly(tmp_path):
    times = [0, 0.05, 0.1, 0.5, 0.55, 1.5, 1.52, 1.6, 2.5, 2.9, 3.0]
    vfr = write_clip(tmp_path / "vfr.mkv", len(times), 10, times=times)
    assert [f.time for f in clip_frames(vfr)] == times
    # the first frame at or after each half second
    assert [f.time for f in clip_frames(vfr, Sampling(fps=2))] == [0.0, 0.5, 1.5, 2.5, 3.0]


def test_detections_follow_the_moving_shape(shapes_onnx, clip):
    _, label, _ = moving_shape()
    results = list(fc2conv.detect_many(shapes_onnx, [clip]))
    assert len(results) == 30 and all(item.ok for item in results)
    for item in results[:WHOLE]:
        assert item.frame is not None
        _, (x1, y1, x2, y2) = frame_at(item.frame.index)
        found = item.result
        best = int(np.argmax(found.scores))
        assert int(found.labels[best]) == label, (item.path, found.as_list())
        bx1, by1, bx2, by2 = found.boxes[best]
        centre = ((bx1 + bx2) / 2, (by1 + by2) / 2)
        assert abs(centre[0] - (x1 + x2) / 2) < 12 and abs(centre[1] - (y1 + y2) / 2) < 12
    assert str(results[3].path) == f"{clip}#t=0.300"


def test_cli_records_each_frame_with_its_clip_time_and_track(shapes_onnx, clip, tmp_path):
    out, coco = tmp_path / "frames.jsonl", tmp_path / "coco.json"
    code, output = run(
        "detect", str(shapes_onnx), str(clip), "--fps", "5", "--track", "--jsonl", str(out),
        "--coco", str(coco),
    )  # fmt: skip
    assert code == 0, output
    lines = records(out)
    assert [line["frame"] for line in lines] == list(range(0, 30, 2))
    assert [line["time"] for line in lines] == [round(i / 5, 3) for i in range(15)]
    assert {line["clip"] for line in lines} == {str(clip)}
    assert lines[1]["path"] == f"{clip}#t=0.200"
    assert lines[0]["image_size"] == {"width": WIDTH, "height": HEIGHT}
    # the shape moves 12 px between sampled frames: one track while it is whole
    _, label, _ = moving_shape()
    tracks = {
        d["track"]
        for line in lines[: WHOLE // 2 + 1]
        for d in line["detections"]
        if d["class"] == CLASSES[label]
    }
    assert tracks == {1}
    names = [image["file_name"] for image in json.loads(coco.read_text())["images"]]
    assert names[:2] == [f"{clip}#t=0.000", f"{clip}#t=0.200"]
    assert "15 frames: 15 succeeded" in output


def test_resume_goes_on_after_the_last_frame_written(shapes_onnx, clip, tmp_path):
    out = tmp_path / "r.jsonl"
    args = ["detect", str(shapes_onnx), str(clip), "--every", "0.5", "--jsonl", str(out)]
    assert run(*args, "--quiet")[0] == 0
    whole = records(out)
    out.write_text("".join(json.dumps(line) + "\n" for line in whole[:2]))
    code, output = run(*args, "--resume", "--quiet")
    assert code == 0, output
    assert [line["path"] for line in records(out)] == [line["path"] for line in whole]
    code, output = run(*args[:-2], "--every", "1", "--jsonl", str(out), "--resume", "--quiet")
    assert code == 1 and "every" in output  # another sampling: refused


def test_resumed_tracks_go_on_from_the_frames_written(shapes_onnx, clip, tmp_path):
    out = tmp_path / "t.jsonl"
    args = ["detect", str(shapes_onnx), str(clip), "--fps", "5", "--track", "--jsonl", str(out)]
    assert run(*args, "--quiet")[0] == 0
    whole = records(out)
    assert run(*args, "--resume", "--quiet")[0] == 0  # nothing left to run
    assert records(out) == whole
    # the first frame written elsewhere: its boxes are track 1, the next frame's start track 2
    first, second = whole[0], whole[1]
    moved = [{**d, "box": [v + 2000 for v in d["box"]], "track": 1} for d in first["detections"]]
    renamed = [{**d, "track": d["track"] + 1} for d in second["detections"]]
    written = [{**first, "detections": moved}, {**second, "detections": renamed}]
    out.write_text("".join(json.dumps(line) + "\n" for line in written))
    code, output = run(*args, "--resume", "--quiet")
    assert code == 0, output
    resumed = records(out)[2:]
    assert [line["path"] for line in resumed] == [line["path"] for line in whole[2:]]
    for line, before in zip(resumed[:3], whole[2:5], strict=True):  # tracks go on: ids + 1
        assert [d["track"] for d in line["detections"]] == [
            d["track"] + 1 for d in before["detections"]
        ]


def test_folders_find_clips_beside_images(clip, tmp_path):
    (tmp_path / "c.mkv").write_bytes(b"")
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    assert [p.name for p in collect_images([tmp_path])] == ["a.png", "c.mkv"]


def test_a_damaged_clip_keeps_its_frames_and_records_the_error(shapes_onnx, tmp_path):
    whole = write_clip(tmp_path / "long.mkv", 40, 10)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 6 // 10])
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a clip")
    image = tmp_path / "still.png"
    Image.fromarray(frame_at(0)[0]).save(image)
    out = tmp_path / "d.jsonl"
    code, output = run(
        "detect", str(shapes_onnx), str(cut), str(not_video), str(image), "--every", "0.5",
        "--jsonl", str(out), "--quiet",
    )  # fmt: skip
    assert code == 1
    lines = records(out)
    frames = [line for line in lines if line.get("clip") == str(cut) and not line["error"]]
    assert 2 <= len(frames) < 8  # the frames before the cut, every 0.5 s of 4 s
    errors = {line["path"]: line["error"] for line in lines if line["error"]}
    assert "is cut short" in errors[str(cut)] or "is damaged" in errors[str(cut)]
    assert errors[str(not_video)].startswith(f"cannot read video {not_video}")
    assert lines[-1]["path"] == str(image) and not lines[-1]["error"]  # the run went on
    assert "2 of" in output and "failed" in output


def test_a_clip_without_a_video_stream(tmp_path):
    import av

    audio = tmp_path / "sound.mkv"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(Fc2ConvError, match="has no video stream"):
        list(clip_frames(audio))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--every", "0"], "Invalid value for '--every'"),
        (["--fps", "-2"], "Invalid value for '--fps'"),
        (["--every", "1", "--fps", "2"], "--every and --fps both choose frames; pass one of them"),
        ([], "a clip needs --jsonl FILE (a record per frame) and/or --out-dir FOLDER"),
    ],
)
def test_bad_sampling_and_outputs_say_what_to_do(shapes_onnx, clip, tmp_path, args, message):
    jsonl = ["--jsonl", str(tmp_path / "x.jsonl")] if args else []
    code, output = run("detect", str(shapes_onnx), str(clip), *args, *jsonl)
    assert code in (1, 2) and message in output, output
    assert "Traceback" not in output and not (tmp_path / "x.jsonl").exists()


def test_python_runs_a_clip_object(shapes_onnx, clip):
    later = Clip(clip, Sampling(every=1), after=0.5)
    names = [str(item.path) for item in fc2conv.detect_many(shapes_onnx, [later])]
    assert names == [f"{clip}#t=1.000", f"{clip}#t=2.000"]
    with pytest.raises(Fc2ConvError, match="--every must be a positive number of seconds"):
        Sampling(every=0)


def frames_of(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_an_annotated_video_of_the_sampled_frames(shapes_onnx, clip, tmp_path):
    import av

    video = tmp_path / "boxes.mp4"
    code, output = run(
        "detect", str(shapes_onnx), str(clip), "--fps", "5", "--out-video", str(video)
    )  # fmt: skip
    assert code == 0, output
    assert f"15 frames: 15 succeeded, 0 failed; wrote {video}" in output
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == 5
    drawn = frames_of(video)
    assert len(drawn) == 15 and drawn[0].shape == (HEIGHT, WIDTH, 3)
    # the box and its label are drawn where the shape is: what differs from the plain frame
    # lies there (beyond the codec's noise)
    _, (x1, y1, x2, y2) = frame_at(0)
    plain = frame_at(0)[0].astype(int)
    changed = np.abs(drawn[0].astype(int) - plain).sum(axis=2) > 150
    rows, cols = np.indices(changed.shape)
    near = (cols > x1 - 12) & (cols < x2 + 12) & (rows > y1 - 30) & (rows < y2 + 12)
    inside, outside = changed[near].mean(), changed[~near].mean()
    assert inside > 0.1 and inside > 10 * outside, (inside, outside)
    assert not list(tmp_path.glob(".*partial*"))


def test_a_folder_of_clips_gets_one_video_each(shapes_onnx, clip, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "one.mkv").write_bytes(clip.read_bytes())  # mp4 data: FFmpeg reads it anyway
    write_clip(folder / "two.avi", 6, 5)
    Image.fromarray(frame_at(0)[0]).save(folder / "still.png")
    out = tmp_path / "out"
    code, output = run(
        "heatmap", str(shapes_onnx), str(folder), "--every", "1", "--class", "star",
        "--out-dir", str(out), "--quiet",
    )  # fmt: skip
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["one.mp4", "still.png", "two.mp4"]
    assert len(frames_of(out / "one.mp4")) == 3 and len(frames_of(out / "two.mp4")) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--out-video", "{tmp}/missing/v.mp4"], "does not exist"),
        (["--out-video", "{tmp}/v.xyz"], "FFmpeg has no video container for"),
        (["--jsonl", "{tmp}/r.jsonl", "--resume", "--out-video", "{tmp}/v.mp4"],
         "--resume goes on with the --jsonl records, not with annotated videos"),
    ],
)  # fmt: skip
def test_bad_video_outputs_are_refused_before_the_run(shapes_onnx, clip, tmp_path, extra, message):
    args = [value.format(tmp=tmp_path) for value in extra]
    code, output = run("detect", str(shapes_onnx), str(clip), *args)
    assert code in (1, 2) and message in output, output
    assert not list(tmp_path.rglob("*.mp4")) and not list(tmp_path.rglob("*.jsonl"))


def test_clip_settings_on_one_image_say_so(shapes_onnx, tmp_path):
    image = tmp_path / "still.png"
    Image.fromarray(frame_at(0)[0]).save(image)
    code, output = run("detect", str(shapes_onnx), str(image), "--fps", "2", "--out", "o.png")
    assert code == 2 and f"--fps: for clips, and {image} is one image" in output
    code, output = run("detect", str(shapes_onnx), str(image), "--out-video", "v.mp4")
    assert code == 2 and "--out-video is a clip's annotated video" in output


@pytest.mark.ray
def test_on_ray_a_clip_is_one_task_with_its_frames_in_order(shapes_onnx, clip, tmp_path):
    """The same records as the run here (seconds aside), a clip's frames in order."""
    ray = pytest.importorskip("ray")
    here, there = tmp_path / "here.jsonl", tmp_path / "ray.jsonl"
    image = tmp_path / "still.png"
    Image.fromarray(frame_at(0)[0]).save(image)
    common = ["detect", str(shapes_onnx), str(clip), str(image), "--fps", "2", "--quiet"]
    assert run(*common, "--jsonl", str(here))[0] == 0
    try:
        code, output = run(*common, "--jsonl", str(there), "--ray")
    finally:
        ray.shutdown()  # the command started a local cluster in this process
    assert code == 0, output

    def shown(path: Path) -> list[tuple]:
        return [(r["path"], json.dumps(r.get("detections"))) for r in records(path)]

    frames = [name for name, _ in shown(there) if "#t=" in name]
    assert frames == [name for name, _ in shown(here) if "#t=" in name]  # in order
    assert sorted(shown(there)) == sorted(shown(here))
