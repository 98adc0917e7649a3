"""Many images, reduced precision and the fp32 share of the machine's peak, measured in one run;
writes docs/many_images.md.

    python benchmarks/many_images.py            # about 25 minutes on 2 cores

1. The machine's fp32 matrix-multiply peak (onnxruntime MatMul and NumPy, 4096x4096), and the
   VGG-16 FCN (random weights) at 448x448 in onnxruntime as a share of it, under the settings
   the run path could use (threads, memory arena, optimisation level, two same-size images per
   run), with the peak memory of each in a fresh process.
2. Static int8 (``fc2conv quantize``): VGG-16 at 448x448 against fp32 (speed; calibrated on 16
   generated scenes), the int8 speed-up this CPU allows on the model's own layer shapes, and
   the bundled model on held-out scenes: arg-max agreement per cell, and
   detection precision and recall against the scenes' true boxes, fp32 and int8. VGG-16 in
   each runtime and precision of the run path (onnxruntime; OpenVINO fp32, int8, and bf16
   where the CPU has it).
3. Folder runs of the bundled model: images/s over 200 scenes of 640x480, and peak memory of
   `fc2conv detect FOLDER --jsonl` over 100 and 1000 images.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import onnx
from common import (
    ROOT,
    conv_flops,
    cpu_flags,
    machine,
    matmul_peak,
    median_time,
    ort_session,
    peak_rss,
)
from onnx import TensorProto, helper
from PIL import Image

from fc2conv.run.quantize import quantize, quantize_graph
from fc2conv.shapes.quality import evaluate
from fc2conv.shapes.scenes import draw_scene

#: single layers of the VGG-16 FCN at 448x448: (name, input channels, output channels, kernel, side)
LAYERS = (
    ("conv4: 3×3, 512→512 channels, 56×56", 512, 512, 3, 56),
    ("fc7 as a convolution: 1×1, 4096→4096 channels, 8×8", 4096, 4096, 1, 8),
)


class OneInput:
    """onnxruntime's CalibrationDataReader for one input."""

    def __init__(self, feed: dict[str, np.ndarray]) -> None:
        self.feeds = [feed]

    def get_next(self) -> dict[str, np.ndarray] | None:
        return self.feeds.pop() if self.feeds else None


def int8_ceiling(repeats: int, work: Path) -> list[tuple[str, float, float]]:
    """The int8 speed-up this CPU allows onnxruntime on the model's own layer shapes: each
    layer (convolution and ReLU) alone, fp32 against int8 with fc2conv's quantisation settings;
    (name, fp32 GFLOP/s, int8 GOP/s) per layer."""
    rng = np.random.default_rng(3)
    rows = []
    for name, cin, cout, kernel, side in LAYERS:
        weight = rng.standard_normal((cout, cin, kernel, kernel)) / np.sqrt(cin * kernel**2)
        graph = helper.make_graph(
            [
                helper.make_node("Conv", ["x", "w"], ["y"], pads=[kernel // 2] * 4),
                helper.make_node("Relu", ["y"], ["z"]),
            ],
            "layer",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, side, side])],
            [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
            [onnx.numpy_helper.from_array(weight.astype(np.float32), "w")],
        )
        fp32, int8 = work / "layer.onnx", work / "layer_int8.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), fp32)
        image = np.abs(rng.standard_normal((1, cin, side, side), dtype=np.float32))
        quantize_graph(fp32, int8, OneInput({"x": image}))
        seconds = {}
        for label, path in (("fp32", fp32), ("int8", int8)):
            runner = ort_session(path, arena=False)
            seconds[label] = median_time(
                lambda runner=runner, image=image: runner.run(None, {"x": image}), repeats
            )
        flops = 2 * cout * cin * kernel**2 * side**2
        rows.append((name, flops / seconds["fp32"] / 1e9, flops / seconds["int8"] / 1e9))
    return rows


#: one run of a setting in a fresh process, for its peak memory (empty path: imports only)
SETTING_RUN = """
import numpy as np, onnxruntime as ort
if {path!r}:
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = {arena!r}
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, {level!r})
    if {threads!r}:
        options.intra_op_num_threads = {threads!r}
    runner = ort.InferenceSession({path!r}, options, providers=["CPUExecutionProvider"])
    image = np.zeros(({batch}, 3, 448, 448), np.float32)
    runner.run(None, {{runner.get_inputs()[0].name: image}})
with open({after!r}, "w") as out:  # resident bytes now, after the peak
    out.write(open("/proc/self/statm").read().split()[1])
"""


def setting_memory(vgg: Path | None, work: Path, threads, arena, level, batch) -> tuple[int, int]:
    """Peak RSS and RSS after the run (bytes) of a fresh process that opens VGG-16 with a
    setting and runs it once."""
    levels = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED"}
    code = SETTING_RUN.format(
        path=str(vgg) if vgg else "",
        threads=threads,
        arena=arena,
        level=levels[level],
        batch=batch,
        after=str(work / "after.txt"),
    )
    peak = peak_rss([sys.executable, "-c", code], work)[1]
    return peak, int((work / "after.txt").read_text()) * os.sysconf("SC_PAGE_SIZE")


def fp32_share(vgg: Path, peak: float, repeats: int, work: Path) -> tuple[list[str], float, float]:
    flops = conv_flops(vgg, (448, 448))
    image = np.random.default_rng(1).standard_normal((2, 3, 448, 448), dtype=np.float32)
    rows = []
    settings = [
        (
            "run path (fc2conv's runner: all optimisations, no arena, default threads)",
            None,
            False,
            "all",
            1,
        ),
        ("memory arena on", None, True, "all", 1),
        ("two same-size images per run", None, False, "all", 2),
        ("one thread", 1, False, "all", 1),
        ("extended optimisations (no NCHWc layout)", None, False, "extended", 1),
    ]
    for label, threads, arena, level, batch in settings:
        runner = ort_session(vgg, level, threads, arena)
        feed = {runner.get_inputs()[0].name: image[:batch]}
        seconds = (
            median_time(lambda runner=runner, feed=feed: runner.run(None, feed), repeats) / batch
        )
        rate = flops / seconds / 1e9
        del runner
        memory, after = setting_memory(vgg, work, threads, arena, level, batch)
        rows.append(
            f"| {label} | {1000 * seconds:.0f} | {rate:.0f} | {100 * rate / peak:.0f}% "
            f"| {memory / 1e6:.0f} | {after / 1e6:.0f} |"
        )
    baseline = setting_memory(None, work, None, False, "all", 1)[0] / 1e6
    return rows, flops, baseline


def bf16_agreement(shapes: Path, held: Path) -> float:
    """The share of cells whose arg-max class is the same in OpenVINO bf16 as in fp32."""
    from fc2conv.run import Runner
    from fc2conv.run.images import read_image

    fp32 = Runner.from_onnx(shapes, runtime="openvino")
    bf16 = Runner.from_onnx(shapes, runtime="openvino", precision="bf16")
    same = cells = 0
    for path in sorted(held.iterdir()):
        image, _ = read_image(path)
        expected, actual = fp32.logits(image).argmax(0), bf16.logits(image).argmax(0)
        same += int((expected == actual).sum())
        cells += expected.size
    return same / cells


def runtimes(
    vgg: Path,
    vgg_int8: Path,
    image: np.ndarray,
    times: dict[str, float],
    repeats: int,
    shapes: Path,
    held: Path,
) -> tuple[list[str], str]:
    """VGG-16 at 448x448 in each runtime and precision the run path offers, against
    onnxruntime fp32: rows of the table, and what the CPU says of bf16."""
    import openvino

    from fc2conv.runtime import open_runtime

    reference = times["fp32"]
    rows = [
        f"| onnxruntime | {name} | {1000 * times[name]:.0f} | {reference / times[name]:.2f}× |"
        for name in ("fp32", "int8")
    ]
    capabilities = list(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    runs = [("fp32", vgg, "fp32"), ("int8 (the same quantized file)", vgg_int8, "fp32")]
    if "BF16" in capabilities:
        runs.append(("bf16", vgg, "bf16"))
        agreement = bf16_agreement(shapes, held)
        note = (
            f"bf16 on the bundled model over the {len(list(held.iterdir()))} held-out scenes: "
            f"the arg-max class of {100 * agreement:.2f}% of cells is OpenVINO fp32's. "
            "OpenVINO finds bf16 arithmetic on this CPU (capabilities: "
        )
    else:
        note = "bf16 was not run: OpenVINO finds no bf16 arithmetic on this CPU (capabilities: "
    note += f"{', '.join(capabilities)}); `--precision bf16` says so and stops on such a CPU."
    for label, path, precision in runs:
        runner = open_runtime(path, "openvino", precision)
        feed = {runner.get_inputs()[0].name: image}
        seconds = median_time(lambda runner=runner, feed=feed: runner.run(None, feed), repeats)
        rows.append(
            f"| OpenVINO {openvino.__version__.split('-')[0]} | {label} "
            f"| {1000 * seconds:.0f} | {reference / seconds:.2f}× |"
        )
        del runner
    return rows, note


def scenes(folder: Path, count: int, width: int, height: int, first: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(first, first + count):
        Image.fromarray(draw_scene(seed, width=width, height=height).image).save(
            folder / f"{seed:05d}.png"
        )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fc2conv-bench-"))
    try:
        run(work, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


#: what run() measures and write() puts into the text
FIGURES = (
    "peaks",
    "peak",
    "share_rows",
    "flops",
    "baseline",
    "model_size",
    "times",
    "vgg_speed",
    "ceiling",
    "runtime_rows",
    "bf16_note",
    "shapes_report",
    "quality",
    "wall",
    "largest",
    "together",
    "startup",
    "memory_rows",
    "repeats",
)


def run(work: Path, repeats: int) -> None:
    fc2conv_cli = [sys.executable, "-m", "fc2conv"]
    shapes = work / "shapes_fcn.onnx"
    subprocess.run([*fc2conv_cli, "shapes", "--out", str(shapes), "--quiet"], check=True)
    vgg = work / "vgg16_fcn.onnx"
    print("exporting VGG-16", flush=True)
    subprocess.run(
        [*fc2conv_cli, "vgg16", "--weights", "none", "--out", str(vgg), "--quiet"], check=True
    )

    model_size = vgg.stat().st_size
    print("matmul peak and fp32 share", flush=True)
    peaks = matmul_peak(repeats)
    peak = max(peaks.values())
    share_rows, flops, baseline = fp32_share(vgg, peak, repeats, work)

    print("int8", flush=True)
    calibration = scenes(work / "calibration", 16, 448, 448, first=500)
    vgg_int8 = work / "vgg16_int8.onnx"
    held = sorted(calibration.iterdir())[:4]  # speed only: random weights
    quantize(vgg, [calibration], vgg_int8, held_out=held)
    fp32_session, int8_session = ort_session(vgg, arena=False), ort_session(vgg_int8, arena=False)
    image = np.random.default_rng(2).standard_normal((1, 3, 448, 448), dtype=np.float32)
    times = {}
    for label, runner in (("fp32", fp32_session), ("int8", int8_session)):
        feed = {runner.get_inputs()[0].name: image}
        times[label] = median_time(lambda runner=runner, feed=feed: runner.run(None, feed), repeats)
    vgg_speed = times["fp32"] / times["int8"]
    del fp32_session, int8_session
    ceiling = int8_ceiling(repeats, work)
    shapes_int8 = work / "shapes_int8.onnx"
    shapes_calibration = scenes(work / "shapes_calibration", 48, 640, 480, first=4000)
    shapes_held = scenes(work / "shapes_held_out", 24, 640, 480, first=5000)
    runtime_rows, bf16_note = runtimes(vgg, vgg_int8, image, times, repeats, shapes, shapes_held)
    shapes_report = quantize(shapes, [shapes_calibration], shapes_int8, held_out=[shapes_held])
    quality = {
        label: evaluate(path, range(3000, 3050))
        for label, path in (("fp32", shapes), ("int8", shapes_int8))
    }

    print("folder runs", flush=True)
    folder = scenes(work / "folder", 200, 640, 480, first=10000)
    jsonl = work / "run.jsonl"
    command = [
        *fc2conv_cli,
        "detect",
        str(shapes),
        str(folder),
        "--jsonl",
        str(jsonl),
        "--force",
        "--quiet",
    ]
    wall, largest, together = peak_rss(command, work)
    start = time.perf_counter()
    subprocess.run([*fc2conv_cli, "--version"], check=True, capture_output=True)
    startup = time.perf_counter() - start
    memory_rows = []
    for count in (100, 1000):
        subset = work / f"subset{count}"
        subset.mkdir()
        sources = sorted(folder.iterdir())
        for index in range(count):
            (subset / f"{index:05d}.png").symlink_to(sources[index % len(sources)])
        command = [
            *fc2conv_cli,
            "detect",
            str(shapes),
            str(subset),
            "--jsonl",
            str(work / "m.jsonl"),
            "--force",
            "--quiet",
        ]
        seconds, peak_memory, _ = peak_rss(command, work)
        memory_rows.append(
            f"| {count} | {seconds:.1f} | {count / seconds:.1f} | {peak_memory / 1e6:.0f} |"
        )

    figures = {name: value for name, value in locals().items() if name in FIGURES}
    write(figures)


def write(figures: dict) -> None:
    (
        peaks,
        peak,
        share_rows,
        flops,
        baseline,
        model_size,
        times,
        vgg_speed,
        ceiling,
        runtime_rows,
        bf16_note,
        shapes_report,
        quality,
        wall,
        largest,
        together,
        startup,
        memory_rows,
        repeats,
    ) = (figures[name] for name in FIGURES)
    mark = lambda ok: "✓" if ok else "✗"  # noqa: E731
    best_share = max(float(row.split("|")[4].strip().rstrip("%")) for row in share_rows)
    cells = [[cell.strip() for cell in row.split("|")[1:-1]] for row in share_rows]
    run_path, extended = cells[0], cells[-1]  # all optimisations / no NCHWc, both without arena
    nchwc_memory = float(run_path[4]) - float(extended[4])
    nchwc_speed = float(extended[1]) / float(run_path[1])
    best_layer = max(int8 / fp32 for _, fp32, int8 in ceiling)
    ceiling_rows = "\n".join(
        f"| {name} | {fp32:.0f} | {int8:.0f} | {int8 / fp32:.2f}× |" for name, fp32, int8 in ceiling
    )
    if best_layer < 3:
        ceiling_note = (
            f"Neither layer shape reaches 3× in int8 on this CPU, and the model's {vgg_speed:.2f}× "
            f"is {100 * vgg_speed / best_layer:.0f}% of the faster layer's {best_layer:.2f}×: "
            "on this CPU the 3× target is out of onnxruntime int8's reach."
        )
    else:
        ceiling_note = (
            f"The model's {vgg_speed:.2f}× is {100 * vgg_speed / best_layer:.0f}% of the faster "
            f"layer's {best_layer:.2f}×."
        )
    if not cpu_flags() & {"avx_vnni", "avx512_vnni"}:
        ceiling_note += (
            " This CPU has no VNNI (AVX-VNNI or AVX512-VNNI): onnxruntime's int8 kernels "
            "multiply and add with three instructions (vpmaddubsw, vpmaddwd, vpaddd) where VNNI "
            "takes one (vpdpbusd). What int8 gains on a VNNI CPU is not measured here: run this "
            "benchmark there."
        )
    ceiling_note = textwrap.fill(ceiling_note, 95)
    setup = machine("onnxruntime")
    text = f"""# Many images, reduced precision, and the fp32 share of the machine's peak

Measured with `python benchmarks/many_images.py --repeats {repeats}` in one run on {setup};
times are medians of {repeats} runs after a warm-up. These machines are shared: figures from
different runs differ by 10–20%.

## 1. fp32: VGG-16 FCN at 448×448 against the machine's matrix-multiply peak

Peak, a 4096×4096 float32 matrix product: onnxruntime (MLAS) {peaks["onnxruntime"]:.0f} GFLOP/s,
NumPy {peaks["numpy"]:.0f} GFLOP/s; the share below is of the larger, {peak:.0f} GFLOP/s. The
model's convolutions at 448×448 are {flops / 1e9:.1f} GFLOP per image (from onnx shape inference).

| onnxruntime setting | ms per image | GFLOP/s | share of peak | peak RSS (MB) | RSS after the run (MB) |
|---|---|---|---|---|---|
{chr(10).join(share_rows)}

Memory: a fresh process that opens the model with the setting and runs one image (the model's
file is {model_size / 1e6:.0f} MB; a process that only imports onnxruntime and NumPy: {baseline:.0f} MB).
The NCHWc layout that all optimisations bring costs {nchwc_memory:.0f} MB more at the peak than
extended optimisations, for {nchwc_speed:.2f}× their speed: when the session opens, onnxruntime
holds re-laid-out copies of the convolution weights beside the originals. After the run each
process holds far less (last column). The run path keeps all optimisations, for their speed.

Target ≥ 80% of the peak: {mark(best_share >= 80)} (best {best_share:.0f}%).

## 2. Static int8 (`fc2conv quantize`)

VGG-16 FCN (random weights), 448×448, one image per run: fp32 {1000 * times["fp32"]:.0f} ms,
int8 {1000 * times["int8"]:.0f} ms: **{vgg_speed:.2f}× faster** (target ≥ 3×:
{mark(vgg_speed >= 3)}). Calibrated on 16 generated scenes of 448×448; with random weights the
agreement figures of this model say nothing, so they are not quoted.

What this CPU allows int8: the model's own layer shapes alone (convolution and ReLU, one
image), fp32 against int8 with the same quantisation settings, in onnxruntime with the run
path's options:

| layer at 448×448 | fp32 GFLOP/s | int8 GOP/s | int8 speed-up |
|---|---|---|---|
{ceiling_rows}

{ceiling_note}

The bundled model (trained), calibrated on 48 scenes of 640×480 and compared on 24 others
(`fc2conv quantize` report):

```
{str(shapes_report).split(chr(10), 1)[1]}
```

Arg-max agreement per cell: {100 * shapes_report.argmax_agreement:.2f}% (target ≥ 99%:
{mark(shapes_report.argmax_agreement >= 0.99)}). Detection against the true boxes of 50 seeded
scenes (seeds 3000–3049, `fc2conv.shapes.quality.evaluate`):

| model | precision | recall | heatmap peaks inside their shape |
|---|---|---|---|
| fp32 | {quality["fp32"].precision:.3f} | {quality["fp32"].recall:.3f} | {quality["fp32"].peak_rate:.3f} |
| int8 | {quality["int8"].precision:.3f} | {quality["int8"].recall:.3f} | {quality["int8"].peak_rate:.3f} |

Within 0.01 of fp32: precision {mark(abs(quality["fp32"].precision - quality["int8"].precision) <= 0.01)},
recall {mark(abs(quality["fp32"].recall - quality["int8"].recall) <= 0.01)}.

### Runtimes and precisions

VGG-16 FCN at 448×448, one image per run, in each runtime `fc2conv heatmap|detect --runtime
… --precision …` offers (OpenVINO: its CPU plugin with the latency hint, as the run path opens
it), against onnxruntime fp32:

| runtime | precision | ms per image | speed-up |
|---|---|---|---|
{chr(10).join(runtime_rows)}

{bf16_note}

## 3. Folder runs of the bundled model

`fc2conv detect shapes_fcn.onnx FOLDER --jsonl run.jsonl --quiet` over 200 generated scenes of
640×480 (default pyramid): {wall:.1f} s in all, **{200 / wall:.1f} images/s** including the
command's start ({startup:.1f} s for `fc2conv --version`); peak memory {largest / 1e6:.0f} MB
(largest process), {together / 1e6:.0f} MB (all processes).

Peak memory against the length of the run (the same 200 scenes, repeated):

| images | seconds | images/s | peak RSS (MB) |
|---|---|---|---|
{chr(10).join(memory_rows)}
"""
    (ROOT / "docs" / "many_images.md").write_text(text)
    print("wrote docs/many_images.md")


if __name__ == "__main__":
    main()
