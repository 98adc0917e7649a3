"""The run path and the finer stride, measured on this machine in one run.

    python benchmarks/run_path.py              # writes docs/run_path.md (about 10 minutes)

1. A finer stride (à trous): VGG-16 and ResNet-50 (random weights) at 448x448 at stride 32, 16
   and 8 in PyTorch eager: the relative error of every (32/s)-th cell against the stride-32
   map, the map size and the time (median of --repeats, timed alternately).
2. Heatmaps and detection of the bundled model's exported file: peak memory (RSS of the
   process) and wall time of `fc2conv heatmap` / `fc2conv detect`, and of the same calls from
   Python with and without PyTorch imported first, each in a fresh process.
3. A 6000x4000 photo (a generated scene scaled up): peak memory and time of `fc2conv heatmap`
   and `fc2conv detect` with the default --max-size.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from common import ROOT, VERSIONS, fmt, machine, paired_times
from PIL import Image

import fc2conv
from fc2conv.compare import relative_error


def finer_stride(repeats: int) -> list[str]:
    rows = []
    for name in ("vgg16", "resnet50"):
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)().eval()
        images = torch.randn(1, 3, 448, 448)
        maps = {s: fc2conv.convert(model, (224, 224), stride=s) for s in (32, 16, 8)}
        with torch.no_grad():
            outputs = {s: maps[s](images) for s in maps}
        coarse = outputs[32]
        timed: dict[int, list[float]] = {}

        def call(stride: int, images: torch.Tensor = images, maps: dict = maps) -> None:
            with torch.no_grad():
                maps[stride](images)

        for s in (16, 8):
            first, second = paired_times(lambda: call(32), lambda s=s: call(s), repeats)
            timed.setdefault(32, []).extend(first)
            timed[s] = second
        with torch.no_grad():  # the same sums in float64: what is left is not rounding
            doubles = {s: maps[s].double()(images.double()) for s in maps}
        for s in (32, 16, 8):
            factor = 32 // s
            error = relative_error(coarse, outputs[s][..., ::factor, ::factor])
            exact = relative_error(doubles[32], doubles[s][..., ::factor, ::factor])
            size = "x".join(map(str, outputs[s].shape[-2:]))
            ratio = statistics.median(timed[s]) / statistics.median(timed[32])
            rows.append(
                f"| {name} | {s} | {size} | {error:.1e} | {exact:.1e} | {fmt(timed[s])} | "
                f"{ratio:.2f}x |"
            )
    return rows


def one_per_process(command: list[str], repeats: int) -> tuple[list[float], list[float], str]:
    """Wall times (s) and peak memory (GB) of ``command``, each repeat in a fresh process
    measured by a helper process of its own (RUSAGE_CHILDREN keeps a maximum over all
    children), and the command's last line of output."""
    seconds, peaks, last = [], [], ""
    probe = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "took = time.perf_counter() - start\n"
        "assert done.returncode == 0, done.stderr[-2000:]\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(took, peak, (done.stdout.strip().splitlines() or [''])[-1], sep='\\t')\n"
    )
    for _ in range(repeats):
        result = subprocess.run(
            [sys.executable, "-c", probe, *command], capture_output=True, text=True, timeout=1200
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
        took, peak, last = result.stdout.rstrip("\n").split("\t", 2)
        seconds.append(float(took))
        peaks.append(float(peak) / 1e6)
    return seconds, peaks, last


def run_path(folder: Path, repeats: int) -> tuple[list[str], list[str]]:
    from fc2conv.shapes.scenes import draw_scene

    model = folder / "shapes.onnx"
    subprocess.run(
        [sys.executable, "-m", "fc2conv", "shapes", "--out", str(model), "--quiet"], check=True
    )
    scene = folder / "scene.png"
    Image.fromarray(draw_scene(9).image).save(scene)
    cli = [sys.executable, "-m", "fc2conv"]
    python = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "{prelude}"
        "import fc2conv\n"
        "maps = fc2conv.heatmap(sys.argv[1], sys.argv[2])\n"
        "found = fc2conv.detect(sys.argv[1], sys.argv[2])\n"
        "print(f'{{time.perf_counter() - start:.2f}} s, torch imported: {{\"torch\" in sys.modules}}')\n"
    )
    cases = [
        (
            "`fc2conv heatmap` (640x480)",
            [
                *cli,
                "heatmap",
                str(model),
                str(scene),
                "--out",
                str(folder / "h.png"),
                "--force",
                "--quiet",
            ],
        ),
        (
            "`fc2conv detect` (640x480)",
            [
                *cli,
                "detect",
                str(model),
                str(scene),
                "--out",
                str(folder / "d.png"),
                "--force",
                "--quiet",
            ],
        ),
        (
            "Python: heatmap + detect, no PyTorch",
            [sys.executable, "-c", python.format(prelude=""), str(model), str(scene)],
        ),
        (
            "Python: heatmap + detect, PyTorch imported first",
            [sys.executable, "-c", python.format(prelude="import torch\n"), str(model), str(scene)],
        ),
        ("Python: `import torch` alone", [sys.executable, "-c", "import torch"]),
    ]
    small = []
    for label, command in cases:
        seconds, peaks, last = one_per_process(command, repeats)
        note = last if label.startswith("Python: heatmap") else ""
        small.append(
            f"| {label} | {fmt(seconds, 1, ' s', 2)} | {fmt(peaks, 1, ' GB', 2)} | {note} |"
        )
    big = folder / "big.jpg"
    Image.fromarray(draw_scene(9).image).resize((6000, 4000), Image.Resampling.BILINEAR).save(
        big, quality=92
    )
    large = []
    for command in ("heatmap", "detect"):
        seconds, peaks, last = one_per_process(
            [
                *cli,
                command,
                str(model),
                str(big),
                "--out",
                str(folder / f"{command}.png"),
                "--force",
            ],
            repeats,
        )
        large.append(
            f"| `fc2conv {command}` | 6000x4000 | {fmt(seconds, 1, ' s', 1)} | {fmt(peaks, 1, ' GB', 2)} |"
        )
    return small, large


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "run_path.md")
    args = parser.parse_args()
    start = time.perf_counter()
    print("finer stride ...", flush=True)
    stride_rows = finer_stride(args.repeats)
    print("run path ...", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        small, large = run_path(Path(folder), args.repeats)
    minutes = (time.perf_counter() - start) / 60
    nl = "\n"
    setup = machine(*VERSIONS)
    report = f"""# The run path and the finer stride

Measured with `python benchmarks/run_path.py --repeats {args.repeats}` on {setup}, in
{minutes:.0f} minutes. Times are medians of {args.repeats} runs with min–max in brackets.
Random weights for VGG-16 and ResNet-50 (torchvision's initialisation); the bundled weights
for `shapes`.

## 1. A finer stride (à trous)

`fc2conv.convert(model, (224, 224), stride=s)` on a 448x448 image in PyTorch eager, timed
alternately with stride 32. "every (32/s)-th cell": the relative error of those cells against
the stride-32 map (target ≤ 1e-6), in float32 and with both models run in float64. The refined
model computes the same sums in another order (a dilated convolution instead of a strided
one), so in float32 they differ by rounding, which grows with the length of the sums (VGG-16's
fc6 adds 25,088 products); in float64 the difference shows what is not rounding (ResNet-50's
window pool, read by a spread kernel, becomes a depthwise convolution whose weights, 1/49, are
stored in float32: 2e-8 from the exact average).

| model | stride | map | every (32/s)-th cell, float32 | float64 | time | against stride 32 |
|---|---:|---|---:|---:|---:|---:|
{nl.join(stride_rows)}

## 2. Heatmaps and detection from an exported file

The bundled model's exported file on a 640x480 scene, each run in a fresh process: wall time
(including start-up and imports) and peak memory (RSS). Heatmaps and detection run their
default image pyramids (9 and 13 scales here). Target: ≤ 0.3 GB without PyTorch.

| run | time | peak memory | |
|---|---:|---:|---|
{nl.join(small)}

## 3. A large photo

A 6000x4000 JPEG (a scene scaled up) through the command line with the default
`--max-size 2048`: the image is scaled down once and no pyramid level is larger than 2048 pixels
on its longer side, so memory stays bounded whatever the photo's size.

| run | image | time | peak memory |
|---|---|---:|---:|
{nl.join(large)}
"""
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
