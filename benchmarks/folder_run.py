"""A folder run against its model: where the time of ``fc2conv detect MODEL FOLDER --jsonl``
goes, measured in one run; writes docs/folder_run.md.

    python benchmarks/folder_run.py            # about 10 minutes on 2 cores

For the bundled model (generated 640x480 scenes) and EfficientNet-Lite0 (examples/, real
photos of scikit-image cropped and resized to 640x480):

1. the pyramid's levels for a 640x480 image and the FLOPs of all of them (convolutions, from
   shape inference), against the machine's matrix-multiply peak measured in the same run;
2. onnxruntime alone on those levels (the session the run path opens, inputs prepared
   beforehand): the model's own time per image;
3. the folder run in this process (``fc2conv.run_command``, as the CLI calls it), with every
   onnxruntime call, level resize, normalisation and the detection after the levels timed;
   what is not the model is the rest. Also the CLI itself in a fresh process (its start too).
4. With ``--vgg FILE`` (an exported VGG-16 FCN, e.g. ``fc2conv vgg16 --weights none --out
   FILE``): onnxruntime's cost per FLOP at 448x448, at 480x640 and at 480x640 padded to sizes
   with more factors of two, alternately, in wall and CPU time: whether an off-grid level runs
   slower, and whether padding it would pay.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, conv_flops, machine, matmul_peak
from PIL import Image

import fc2conv
from fc2conv.run import batch, pyramid
from fc2conv.run.runner import Runner
from fc2conv.shapes.scenes import draw_scene

WIDTH, HEIGHT = 640, 480
#: the photos the real classifier's images are cut from (scikit-image's skimage.data)
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "camera")
LITE0 = "examples.efficientnet_lite0:build"
COMMAND = " ".join(["python benchmarks/folder_run.py", *sys.argv[1:]])  #: as it was run
TARGET = 0.30  #: the share of a run's time that may go to anything but the model


def shapes_images(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        scene = draw_scene(5000 + seed, width=WIDTH, height=HEIGHT).image
        Image.fromarray(scene).save(folder / f"{seed:04d}.png")
    return folder


def photo_images(folder: Path, count: int) -> Path:
    """Crops of scikit-image's photos (a seeded random 60-100% of each side), at 640x480."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        name = PHOTOS[index % len(PHOTOS)]
        pixels = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
        image = Image.fromarray(pixels).convert("RGB")
        width, height = image.size
        w, h = (int(side * rng.uniform(0.6, 1.0)) for side in (width, height))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        crop = image.crop((x, y, x + w, y + h)).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR)
        crop.save(folder / f"{index:04d}_{name}.jpg", quality=92)
    return folder


def export_lite0(path: Path) -> Path:
    if not path.is_file():
        from examples.efficientnet_lite0 import imagenet_classes

        fc2conv.export_model(
            LITE0, path, input_size=(224, 224), imagenet=True, classes=imagenet_classes()
        )
    return path


def level_sizes(runner: Runner) -> list[tuple[int, int]]:
    """The sizes detect runs a 640x480 image at (its default pyramid, the whole view too)."""
    sizes: list[tuple[int, int]] = []
    original = runner.logits

    def logits(image: np.ndarray) -> np.ndarray:
        sizes.append(image.shape[:2])
        return original(image)

    runner.logits = logits  # type: ignore[method-assign]
    try:
        fc2conv.detect(runner, np.zeros((HEIGHT, WIDTH, 3), np.float32))
    finally:
        del runner.logits
    return sizes


def model_alone(runner: Runner, sizes: list[tuple[int, int]], repeats: int) -> list[float]:
    """Seconds per image of onnxruntime alone on the levels (inputs made beforehand)."""
    name = runner.session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    feeds = [runner.preprocess(rng.random((h, w, 3), dtype=np.float32)) for h, w in sizes]
    for feed in feeds:  # warm-up: one run of each size
        runner.session.run(None, {name: feed})
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for feed in feeds:
            runner.session.run(None, {name: feed})
        samples.append(time.perf_counter() - start)
    return samples


class Stopwatch:
    """Seconds spent in the wrapped functions, by part, in the run's own thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attribute: str, part: str) -> None:
        original = getattr(owner, attribute)
        seconds = self.seconds

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[part] += time.perf_counter() - start

        setattr(owner, attribute, timed)
        self.undo.append(lambda: setattr(owner, attribute, original))

    def close(self) -> None:
        for undo in reversed(self.undo):
            undo()


def timed_run(model: Path, folder: Path, work: Path) -> dict[str, float]:
    """One folder run in this process, its parts timed (seconds for the whole folder)."""
    import onnxruntime

    watch = Stopwatch()
    watch.wrap(onnxruntime.InferenceSession, "run", "model")
    watch.wrap(pyramid, "as_bytes", "resize")
    watch.wrap(pyramid, "resize_bytes", "resize")
    watch.wrap(Runner, "preprocess", "normalise")
    watch.wrap(batch, "detect", "detect")
    watch.wrap(batch, "read_image", "decode (on the reading thread)")
    out = work / "run.jsonl"
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        summary = fc2conv.run_command(
            "detect", model, [folder], {}, outputs={"jsonl": out, "force": True}
        )
    finally:
        watch.close()
    total = time.perf_counter() - start
    summary.check()
    parts = dict(watch.seconds)
    parts["total"] = total
    parts["detection after the levels"] = (
        parts.pop("detect") - parts["model"] - parts["resize"] - parts["normalise"]
    )
    parts["opening, records, waiting for images"] = total - sum(
        parts[key] for key in ("model", "resize", "normalise", "detection after the levels")
    )
    return parts


def cli_run(model: Path, folder: Path, work: Path) -> float:
    out = work / "cli.jsonl"
    command = [sys.executable, "-m", "fc2conv", "detect", str(model), str(folder)]
    start = time.perf_counter()
    subprocess.run([*command, "--jsonl", str(out), "--quiet", "--force"], check=True)
    return time.perf_counter() - start


def measure(label: str, model: Path, folder: Path, repeats: int, work: Path) -> dict[str, Any]:
    runner = Runner.from_onnx(model)
    sizes = level_sizes(runner)
    count = len(list(folder.iterdir()))
    print(f"{label}: {len(sizes)} levels, {count} images", flush=True)
    flops = sum(conv_flops(model, size) for size in sizes)
    runs, alone = [], []
    timed_run(model, folder, work)  # warm-up
    for _ in range(repeats):  # alternately, so both see the same load
        runs.append(timed_run(model, folder, work))
        alone.append(statistics.median(model_alone(runner, sizes, 3)))
    cli = cli_run(model, folder, work)
    run = sorted(runs, key=lambda parts: parts["total"])[len(runs) // 2]
    return {
        "label": label,
        "model": model.name,
        "images": count,
        "sizes": sizes,
        "flops": flops,
        "alone": statistics.median(alone),
        "run": run,
        "cli": cli,
    }


#: VGG-16 at its canonical size, at 640x480, and at 640x480 padded in height or width
VGG_SIZES = ((448, 448), (480, 640), (512, 640), (480, 672))


def size_costs(path: Path, rounds: int) -> list[tuple[tuple[int, int], float, float, float]]:
    """(size, GFLOP, wall and CPU picoseconds per FLOP) at each of VGG_SIZES: medians of
    ``rounds`` rounds that run every size once, in turn, after a warm-up of each."""
    session = Runner.from_onnx(path).session
    name = session.get_inputs()[0].name
    feeds = {size: np.zeros((1, 3, *size), np.float32) for size in VGG_SIZES}
    for feed in feeds.values():
        session.run(None, {name: feed})
    wall: dict[tuple[int, int], list[float]] = defaultdict(list)
    cpu: dict[tuple[int, int], list[float]] = defaultdict(list)
    for _ in range(rounds):
        for size, feed in feeds.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            session.run(None, {name: feed})
            wall[size].append(time.perf_counter() - start)
            cpu[size].append(time.process_time() - start_cpu)
    rows = []
    for size in VGG_SIZES:
        flops = conv_flops(path, size)
        per_flop = [statistics.median(times[size]) / flops * 1e12 for times in (wall, cpu)]
        rows.append((size, flops / 1e9, *per_flop))
    return rows


def sizes_report(rows: list[tuple[tuple[int, int], float, float, float]], rounds: int) -> list[str]:
    base = rows[0][2]
    lines = [
        "## Off-grid sizes: VGG-16 FCN in onnxruntime",
        "",
        "The VGG-16 FCN with random weights (`fc2conv vgg16 --weights none --out FILE`, "
        f"passed as `--vgg FILE`) in one session (the run path's), {rounds} rounds that run "
        "each size once in turn; medians. CPU time is the process's, both threads: load from other processes "
        "lengthens the wall time but not it.",
        "",
        "| input (width×height) | GFLOP | ps/FLOP (wall) | against 448×448 | ps/FLOP (CPU) |",
        "|---|---|---|---|---|",
    ]
    for (height, width), gflop, wall, cpu in rows:
        lines.append(
            f"| {width}×{height} | {gflop:.1f} | {wall:.2f} | {wall / base - 1:+.0%} | {cpu:.2f} |"
        )
    (_, flops, wall, _), padded = rows[1], rows[2:]
    cheapest = min(padded, key=lambda row: row[1] * row[2])
    saving = 1 - cheapest[1] * cheapest[2] / (flops * wall)
    lines += [
        "",
        f"Padding 640×480 to {cheapest[0][1]}×{cheapest[0][0]} (the padding's cells then "
        f"dropped) would change its time by {-saving:+.0%}: "
        + (
            "worth it."
            if saving > 0.05
            else "it adds FLOPs that no faster kernel pays back, "
            "so levels are run at their own sizes."
        ),
        "",
    ]
    return lines


def report(figures: list[dict[str, Any]], peak: dict[str, float], repeats: int) -> str:
    best = max(peak.values())
    lines = [
        "# A folder run against its model",
        "",
        f"Measured with `{COMMAND}` in one run on "
        f"{machine('onnxruntime', 'python')}. Each folder run is timed {repeats} times in this "
        "process (`fc2conv.run_command`, what the CLI calls), alternating with onnxruntime "
        "alone on the same levels; the run quoted is the median one. These machines are "
        "shared: figures from different runs differ by 10–20%.",
        "",
        f"Machine peak, a 4096×4096 float32 matrix product: onnxruntime {peak['onnxruntime']:.0f}"
        f" GFLOP/s, NumPy {peak['numpy']:.0f} GFLOP/s.",
        "",
    ]
    for fig in figures:
        run, n = fig["run"], fig["images"]
        per_image = {key: value / n for key, value in run.items()}
        flops, alone = fig["flops"], fig["alone"]
        sizes = ", ".join(f"{w}×{h}" for h, w in fig["sizes"])
        rest = 1 - run["model"] / run["total"]
        lines += [
            f"## {fig['label']} (`{fig['model']}`), {n} images of {WIDTH}×{HEIGHT}",
            "",
            f"The default pyramid runs {len(fig['sizes'])} levels per image ({sizes}): "
            f"{flops / 1e9:.1f} GFLOP of convolutions per image. onnxruntime alone on them: "
            f"{alone * 1e3:.0f} ms per image, {flops / alone / 1e9:.0f} GFLOP/s, "
            f"{flops / alone / 1e9 / best:.0%} of the peak.",
            "",
            "| part of the folder run | ms per image | share of the run |",
            "|---|---|---|",
        ]
        for key, value in per_image.items():
            if key != "total":
                lines.append(f"| {key} | {value * 1e3:.1f} | {value / per_image['total']:.0%} |")
        lines += [
            f"| **the run** | **{per_image['total'] * 1e3:.1f}** | 100% |",
            "",
            f"The model takes {run['model'] / run['total']:.0%} of the run; the rest "
            f"{rest:.0%} (target ≤ {TARGET:.0%}: {'✓' if rest <= TARGET else '✗'}). Decoding "
            "runs ahead on a reading thread, so it is not part of the run's own time "
            "(only waiting for it would be). The CLI in a fresh process, its start "
            f"included: {fig['cli']:.1f} s for the {n} images, {n / fig['cli']:.2f} images/s.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenes", type=int, default=40, help="images for the bundled model")
    parser.add_argument("--photos", type=int, default=12, help="images for EfficientNet-Lite0")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "folder_run.md")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "fc2conv_folder_run",
        help="where the exported models are kept between runs",
    )
    parser.add_argument("--vgg", type=Path, help="an exported VGG-16 FCN, for section 4")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of section 4")
    args = parser.parse_args()
    if args.vgg is not None and not args.vgg.is_file():
        parser.error(f"--vgg {args.vgg}: no such file (fc2conv vgg16 --weights none --out FILE)")
    sys.path.insert(0, str(ROOT))  # examples/ for lite0
    args.cache.mkdir(parents=True, exist_ok=True)
    shapes = args.cache / "shapes_fcn.onnx"
    if not shapes.is_file():
        subprocess.run(
            [sys.executable, "-m", "fc2conv", "shapes", "--out", str(shapes)], check=True
        )
    lite0 = export_lite0(args.cache / "lite0_fcn.onnx")
    with tempfile.TemporaryDirectory() as name:
        work = Path(name)
        peak = matmul_peak(5)
        figures = [
            measure(
                "Bundled model",
                shapes,
                shapes_images(work / "scenes", args.scenes),
                args.repeats,
                work,
            ),
            measure(
                "EfficientNet-Lite0",
                lite0,
                photo_images(work / "photos", args.photos),
                args.repeats,
                work,
            ),
        ]
    text = report(figures, peak, args.repeats)
    if args.vgg is not None:
        text += "\n" + "\n".join(sizes_report(size_costs(args.vgg, args.rounds), args.rounds))
    args.out.write_text(text + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
