"""Clips against image files: frames/s of ``fc2conv detect`` on a 640x480 clip at every frame
and at ``--fps 5``, against the same frames as image files, and memory over a 30 s and a
10 min clip, measured in one run; writes docs/video.md.

    python benchmarks/video.py            # about 12 minutes on 2 cores

The clips are generated scenes of the bundled model's shapes drifting across a 640x480
background (H.264, 25 frames a second, written with PyAV). Every run is the command line in a
fresh process (``fc2conv detect ... --jsonl``, its start included), timed by GNU time, which
also reports the peak memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, machine, peak_rss

from fc2conv.shapes.scenes import draw_scene

WIDTH, HEIGHT, RATE = 640, 480, 25
#: (minutes, --every seconds) of the memory runs: a 30 s clip and a 10 min one
MEMORY_RUNS = ((0.5, 0.5), (10, 1.0))
#: records before memory is compared (the warm-up)
WARM = 20


def frame(scene: np.ndarray, index: int) -> np.ndarray:
    """The scene drifting right by 2 pixels a frame (wrapping)."""
    return np.roll(scene, 2 * index, axis=1)


def write_clip(path: Path, seconds: float) -> Path:
    import av

    scene = draw_scene(9000, width=WIDTH, height=HEIGHT).image
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(round(seconds * RATE)):
            picture = av.VideoFrame.from_ndarray(frame(scene, index), format="rgb24")
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frames_as_images(clip: Path, folder: Path, every: int) -> Path:
    """Every ``every``-th frame of the clip, decoded, as PNG files (what a user would cut)."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    with av.open(str(clip)) as container:
        for index, decoded in enumerate(container.decode(video=0)):
            if index % every == 0:
                decoded.to_image().save(folder / f"{index:06d}.png")
    return folder


def detect(
    model: Path, inputs: Path, work: Path, *options: str, trace: list | None = None
) -> tuple[float, int, int]:
    """Seconds, peak RSS (largest process, bytes) and records of one command-line run;
    ``trace`` gets (records written, RSS of the run's processes) every half second."""
    out = work / "run.jsonl"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "fc2conv", "detect", str(model), str(inputs)]
    last = [0.0]

    def watch(resident: int) -> None:
        now = time.perf_counter()
        if trace is not None and now - last[0] >= 0.5:
            last[0] = now
            written = out.read_bytes().count(b"\n") if out.exists() else 0
            trace.append((written, resident))

    seconds, peak, _ = peak_rss(
        [*command, *options, "--jsonl", str(out), "--quiet", "--force"], work, watch=watch
    )
    lines = out.read_text().splitlines()
    failed = [line for line in lines if json.loads(line)["error"]]
    if failed:
        raise SystemExit(f"{inputs}: {len(failed)} records failed, e.g. {failed[0][:300]}")
    return seconds, peak, len(lines)


def resident(trace: list[tuple[int, int]], low: int, high: int) -> float:
    """The largest RSS sampled (MB) while the run had written ``low`` to ``high`` records."""
    return max(rss for written, rss in trace if low <= written <= high) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8, help="the throughput clip's length")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "video.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        work = Path(name)
        model = work / "shapes_fcn.onnx"
        subprocess.run([sys.executable, "-m", "fc2conv", "shapes", "--out", str(model)], check=True)
        clip = write_clip(work / "clip.mp4", args.seconds)
        rows = []
        for label, options, every in (("every frame", [], 1), ("--fps 5", ["--fps", "5"], 5)):
            images = frames_as_images(clip, work / f"frames_{every}", every)
            print(f"{label}: clip, then {len(list(images.iterdir()))} image files", flush=True)
            on_clip = detect(model, clip, work, *options)
            on_images = detect(model, images, work)
            assert on_clip[2] == on_images[2], (on_clip, on_images)
            rows.append((label, on_clip, on_images))
        memory = []
        for minutes, every in MEMORY_RUNS:
            long = write_clip(work / f"long_{minutes}.mp4", minutes * 60)
            print(f"memory over {minutes} min", flush=True)
            trace: list[tuple[int, int]] = []
            run = detect(model, long, work, "--every", str(every), trace=trace)
            memory.append((minutes, every, run, trace))
            long.unlink()
    lines = [
        "# Clips against image files",
        "",
        f"Measured with `python benchmarks/video.py --seconds {args.seconds:g}` in one run on "
        f"{machine('onnxruntime', 'av', 'python')}: the bundled model (`fc2conv shapes`) on a "
        f"{WIDTH}×{HEIGHT} H.264 clip of {args.seconds:g} s at {RATE} frames a second (generated "
        "shapes drifting across a scene), each run `fc2conv detect MODEL INPUT --jsonl "
        "run.jsonl` in a fresh process, its start included, timed by GNU time. These machines "
        "are shared: figures from different runs differ by 10–20%.",
        "",
        "| frames | records | clip: seconds | clip: frames/s | image files: seconds | "
        "image files: frames/s | clip / image files |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, (clip_s, _, count), (images_s, _, _) in rows:
        lines.append(
            f"| {label} | {count} | {clip_s:.1f} | {count / clip_s:.2f} | {images_s:.1f} | "
            f"{count / images_s:.2f} | {images_s / clip_s:.2f}× |"
        )
    lines += [
        "",
        "The image files are the same frames, decoded once and saved as PNG beforehand (that "
        "cutting is not counted). With `--fps 5` the clip run still decodes every frame to "
        "find the ones due.",
        "",
        "Memory of `fc2conv detect MODEL CLIP --every SECONDS --jsonl run.jsonl`: every frame "
        "is decoded, the sampled ones run the model. Peak RSS is GNU time's (the largest "
        f"process); RSS (of the run's processes together, GNU time's own included) is sampled "
        "every half second, with the records written so far. The first "
        f"{WARM} records are the warm-up, while the allocator's heaps grow to what the "
        "pyramid's levels need; then they are reused.",
        "",
        f"| clip | --every | frames decoded | records | seconds | RSS at {WARM}–{2 * WARM} "
        "records (MB) | RSS over the last tenth (MB) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for minutes, every, (seconds, peak, count), trace in memory:
        shown = f"{minutes * 60:.0f} s" if minutes < 1 else f"{minutes:g} min"
        lines.append(
            f"| {shown} | {every:g} | {round(minutes * 60 * RATE)} | {count} | {seconds:.1f} | "
            f"{resident(trace, WARM, 2 * WARM):.0f} | "
            f"{resident(trace, count - count // 10, count):.0f} | {peak / 2**20:.0f} |"
        )
    minutes, _, (_, _, count), trace = memory[-1]
    tenths = [resident(trace, count * k // 10, count * (k + 1) // 10) for k in range(10)]
    lines += [
        "",
        f"The {minutes:g} min clip's RSS, largest sample in each tenth of its records: "
        + ", ".join(f"{value:.0f}" for value in tenths)
        + " MB.",
    ]
    short, long_ = memory[0][2][1], memory[-1][2][1]
    after = max(tenths[1:])
    ratio = long_ / short
    verdict = (
        "memory does not grow with a clip's length"
        if ratio <= 1.1 and after <= 1.1 * tenths[1]
        else f"memory grows by {(long_ - short) / 2**20:.0f} MB over the longer clip"
    )
    lines += [
        "",
        f"The {minutes:g} min clip's peak is {ratio:.2f}× the {memory[0][0] * 60:.0f} s clip's, "
        f"and its RSS after the second tenth stays within {after / tenths[1]:.2f}× of the "
        f"second tenth's: {verdict}.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
