"""fc2conv against what users would otherwise do, measured on this machine in one run.

    python benchmarks/run.py                 # full run (VGG-16, ResNet-50, shapes); the report
                                             # says how long it took
    python benchmarks/run.py --smoke         # tiny version for CI: the shapes model only

Writes a Markdown report (default docs/benchmarks.md): for every figure the median of --repeats
runs (default 5) with min–max, the machine and the versions. Random weights; timings do not
depend on their values. Targets are printed next to the measurements; misses are reported as
measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torchvision
from common import (
    GNU_TIME,
    ROOT,
    VERSIONS,
    fmt,
    machine,
    ort_session,
    paired_times,
    peak_rss,
    times,
)
from torch.utils.flop_counter import FlopCounterMode

import fc2conv
from fc2conv.pipeline import ModelSpec
from fc2conv.sources import load_model


def flops(module: Callable, *inputs: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    return float(counter.get_total_flops())


class Bench:
    def __init__(self, name: str, repeats: int, smoke: bool, folder: Path) -> None:
        loaded = load_model(name, "DEFAULT" if name == "shapes" else "none")
        self.name, self.repeats, self.folder = name, repeats, folder
        self.model = loaded.model.eval()
        self.canonical = loaded.input_size
        self.fcn = fc2conv.convert(self.model, self.canonical, name=name, inplace=True)
        self.fcn.metadata.update(loaded.metadata)
        height, width = self.canonical
        self.sizes = [
            (height, width),
            (2 * height, 2 * width),
            (4 * height, 4 * width),
            (height * 15 // 7, width * 20 // 7),
        ]  # 480x640 for 224x224 models
        if smoke:
            self.sizes = self.sizes[:2]
        self.onnx_path = folder / f"{name}.onnx"
        fc2conv.export_onnx(self.fcn, self.onnx_path, force=True)

    def session(self, level: str, threads: int) -> Any:
        """fc2conv's session with the given optimisation and threads (0: onnxruntime's)."""
        return ort_session(self.onnx_path, level, threads)

    def dense_vs_sliding(self) -> list[str]:
        height, width = self.canonical
        stride = self.fcn.geometry.stride
        image = torch.randn(1, 3, 2 * height, 2 * width)
        crops = torch.cat(
            [
                image[:, :, top : top + height, left : left + width]
                for top in range(0, height + 1, stride[0])
                for left in range(0, width + 1, stride[1])
            ]
        )

        def sliding() -> None:
            with torch.no_grad():
                for chunk in crops.split(16):
                    self.model(chunk)

        def dense() -> None:
            with torch.no_grad():
                self.fcn(image)

        slide_t, dense_t = paired_times(sliding, dense, self.repeats)
        flop_ratio = flops(self.model, crops[:1]) * len(crops) / flops(self.fcn, image)
        time_ratio = statistics.median(slide_t) / statistics.median(dense_t)
        share = time_ratio / flop_ratio
        return [
            f"| {self.name} | {2 * height}x{2 * width} | {len(crops)} | {fmt(slide_t)} | "
            f"{fmt(dense_t)} | {time_ratio:.1f}x | {flop_ratio:.1f}x | {share:.0%} "
            f"{'✓' if share >= 0.95 else '✗'} |"
        ]

    def growth_and_runtimes(self) -> tuple[list[str], list[str], list[str]]:
        probe = torch.randn(1, 3, *self.sizes[1]).numpy()
        configs = []
        for level_name in ("basic", "extended", "all"):
            for threads in (0, os.cpu_count() or 1):
                session = self.session(level_name, threads)
                samples = times(lambda s=session: s.run(None, {"images": probe}), self.repeats)
                configs.append((statistics.median(samples), level_name, threads, samples))
        configs.sort()
        best = configs[0]
        config_rows = [
            f"| {self.name} | {size_label(self.sizes[1])} | {level} | "
            f"{threads or 'default'} | {fmt(samples)} | {'✓' if c is best else ''} |"
            for c in configs
            for _, level, threads, samples in [c]
        ]
        session = self.session(best[1], best[2])
        growth, runtimes = [], []
        first_eager = first_onnx = None
        for size in self.sizes:
            image = torch.randn(1, 3, *size)
            count = flops(self.fcn, image)
            pixels = image.numpy()

            def eager(i: torch.Tensor = image) -> None:
                with torch.no_grad():
                    self.fcn(i)

            eager_t, onnx_t = paired_times(
                eager, lambda i=pixels: session.run(None, {"images": i}), self.repeats
            )
            per_eager = statistics.median(eager_t) / count
            per_onnx = statistics.median(onnx_t) / count
            first_eager, first_onnx = first_eager or per_eager, first_onnx or per_onnx
            change_eager, change_onnx = per_eager / first_eager - 1, per_onnx / first_onnx - 1
            growth.append(
                f"| {self.name} | {size_label(size)} | {count / 1e9:.2f} | "
                f"{per_eager * 1e12:.2f} | {change_eager:+.0%} "
                f"{'✓' if change_eager <= 0.10 else '✗'} | {per_onnx * 1e12:.2f} | "
                f"{change_onnx:+.0%} {'✓' if change_onnx <= 0.10 else '✗'} |"
            )
            ratio = statistics.median(onnx_t) / statistics.median(eager_t)
            runtimes.append(
                f"| {self.name} | {size_label(size)} | {fmt(eager_t)} | {fmt(onnx_t)} | "
                f"{ratio:.2f}x {'✓' if ratio <= 0.5 else '✗'} |"
            )
        return growth, runtimes, config_rows

    def conversion(self) -> list[str]:
        samples = times(
            lambda: fc2conv.convert(self.model, self.canonical, name=self.name, inplace=True),
            self.repeats,
        )
        original = {p.untyped_storage().data_ptr() for p in self.model.parameters()}
        original |= {b.untyped_storage().data_ptr() for b in self.model.buffers()}
        converted = fc2conv.convert(self.model, self.canonical, inplace=True)
        tensors = [*converted.parameters(), *converted.buffers()]
        new = sum(
            t.untyped_storage().nbytes()
            for t in tensors
            if t.untyped_storage().data_ptr() not in original
        )
        self.conversion_seconds = statistics.median(samples)
        return [f"| {self.name} | {fmt(samples)} | {new} {'✓' if new == 0 else '✗'} |"]

    def weights_sources(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        """The export command's arguments and environment for each way of giving weights:
        DEFAULT (a random checkpoint in a private torch hub cache; the shipped weights for
        shapes), a state-dict file, and none."""
        env = dict(os.environ)
        file = self.folder / f"{self.name}_weights.pth"
        torch.save(self.model.state_dict(), file)
        if self.name != "shapes":
            env["TORCH_HOME"] = str(self.folder / "torch_home")
            url = torchvision.models.get_model_weights(self.name).DEFAULT.url
            checkpoint = Path(env["TORCH_HOME"]) / "hub" / "checkpoints" / Path(url).name
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.save(torchvision.models.get_model(self.name).state_dict(), checkpoint)
        return {
            "DEFAULT": (["--weights", "DEFAULT"], env),
            "file": (["--weights", str(file)], env),
            "none": (["--weights", "none"], env),
        }

    def export_process(self) -> tuple[list[str], list[str], list[str]]:
        """The CLI export as a whole (three weights sources, quiet and under a CPU load), its
        time by part, and the memory of its parts in processes of their own."""
        if not GNU_TIME.exists():
            missing = f"| {self.name} | n/a: GNU time (/usr/bin/time) is not installed | | |"
            return [missing], [missing], [missing]
        cli = [sys.executable, "-m", "fc2conv", "export", self.name, "--quiet"]
        whole = []
        sources = self.weights_sources()
        for load in (False, True):
            for source, (arguments, env) in sources.items():
                walls, peaks, trees = [], [], []
                with cpu_load(os.cpu_count() or 2) if load else contextlib.nullcontext():
                    for index in range(self.repeats):
                        out = self.folder / f"cli_{index}.onnx"
                        command = [*cli, *arguments, "--out", str(out)]
                        wall, peak, tree = peak_rss(command, self.folder, env)
                        walls.append(wall)
                        peaks.append(peak)
                        trees.append(tree)
                        out.unlink()
                whole.append(
                    f"| {self.name} | {source} | {'busy' if load else 'quiet'} | "
                    f"{fmt(walls, 1, ' s')} | {fmt(peaks, 1e-9, ' GB', 2)} "
                    f"{'✓' if max(peaks) <= 1.5e9 else '✗'} | {fmt(trees, 1e-9, ' GB', 2)} "
                    f"{'✓' if max(trees) <= 1.5e9 else '✗'} |"
                )
        parts = self.export_time_by_part(sources["DEFAULT"][1])
        return whole, parts, self.export_memory_by_part(sources["DEFAULT"][1])

    def export_time_by_part(self, env: dict[str, str]) -> list[str]:
        """``fc2conv.export_model`` from a process without PyTorch, as the command runs it: the
        time of each part, from the report's timings."""
        out = self.folder / "parts.onnx"
        code = (
            "import json, time; start = time.perf_counter(); import fc2conv; "
            f"report = fc2conv.export_model({self.name!r}, r'{out}', force=True); "
            "print(json.dumps({**report.timings, 'whole': time.perf_counter() - start}))"
        )
        samples: dict[str, list[float]] = {}
        for _ in range(self.repeats):
            done = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            for part, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items():
                samples.setdefault(part, []).append(seconds)
        whole = statistics.median(samples["whole"])
        rows = []
        for part, values in samples.items():
            share = statistics.median(values) / whole
            rows.append(f"| {self.name} | {part} | {fmt(values, 1, ' s', 2)} | {share:.0%} |")
        conversion = getattr(self, "conversion_seconds", 0.0)
        rows.append(
            f"| {self.name} | conversion alone (section 4, median) | {conversion:.3f} s | "
            f"{conversion / whole:.1%} |"
        )
        return rows

    def export_memory_by_part(self, env: dict[str, str]) -> list[str]:
        staging = self.folder / f"{self.name}_stage"
        staging.mkdir()
        staged = staging / "model.onnx"
        request = self.folder / "request.json"
        request.write_text(
            json.dumps(
                {
                    "source": self.name,
                    "spec": ModelSpec().as_json(),  # as fc2conv.export_model sends it
                    "opset": 18,
                    "rtol": 1e-4,
                    "check": True,
                    "staging": str(staging),
                    "name": staged.name,
                    "external_data_threshold": 2 * 1024**3,
                }
            )
        )
        size = "x".join(str(n) for n in self.canonical)
        parts = {
            "imports (torch, torchvision, onnx, onnxruntime, onnxscript, fc2conv)": [
                sys.executable,
                "-c",
                "import torch, torchvision, onnx, onnxruntime, onnxscript, fc2conv.cli, "
                "fc2conv.export.worker, fc2conv.pipeline.export, os; os._exit(0)",  # as the worker
            ],
            "PyTorch part (the child process: load, convert, verify, export)": [
                "sh",
                "-c",
                f"{sys.executable} -m fc2conv.export.worker fc2conv.pipeline.export:stage < {request} > /dev/null",
            ],
            "checks of the written file (the parent, after the child ended; no torch)": [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; "
                "from fc2conv.export.onnx_file import check_file; "
                f"check_file(Path(r'{staged}'), Path(r'{staging / 'checks.npz'}'), 1e-4); "
                "assert 'torch' not in sys.modules",
            ],
            "onnx.checker.check_model(file, full_check=True) alone": [
                sys.executable,
                "-c",
                f"import onnx; onnx.checker.check_model(r'{staged}', full_check=True)",
            ],
            f"onnxruntime session (extended) alone, one run at {size}": [
                sys.executable,
                "-c",
                "import numpy; from fc2conv.runtime import open_session; "
                f"s = open_session(r'{staged}', optimization='extended'); "
                f"s.run(None, {{'images': numpy.zeros((2, 3, {self.canonical[0]}, "
                f"{self.canonical[1]}), numpy.float32)}})",
            ],
        }
        breakdown = []
        for label, command in parts.items():
            _, peak, _ = peak_rss(command, self.folder, env)
            breakdown.append(f"| {self.name} | {label} | {peak / 1e9:.2f} GB |")
        file_size = f"{staged.stat().st_size / 1e9:.2f} GB"
        return [f"| {self.name} | model file | {file_size} |", *breakdown]

    def gradcam(self) -> list[str]:
        try:
            from pytorch_grad_cam import GradCAM
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        except ImportError:
            return [
                f"| {self.name} | pytorch-grad-cam not installed (pip install -e '.[bench]') "
                "| | | | |"
            ]
        layer = last_conv(self.model)
        height, width = self.canonical
        image = torch.randn(1, 3, 2 * height, 2 * width)
        try:
            with torch.no_grad():
                self.model(image)
        except RuntimeError:
            return [
                f"| {self.name} | {2 * height}x{2 * width} | n/a: the original classifier only "
                f"accepts {height}x{width} inputs, so Grad-CAM cannot run on this image | | | |"
            ]
        cam = GradCAM(model=self.model, target_layers=[layer])
        session = self.session("all", 0)
        pixels = image.numpy()

        def dense() -> None:
            with torch.no_grad():
                self.fcn(image)

        grad, eager = paired_times(
            lambda: cam(input_tensor=image, targets=[ClassifierOutputTarget(1)]),
            dense,
            self.repeats,
        )
        onnx = times(lambda: session.run(None, {"images": pixels}), self.repeats)
        ratio = statistics.median(grad) / statistics.median(eager)
        ratio_onnx = statistics.median(grad) / statistics.median(onnx)
        with FlopCounterMode(display=False) as counter:
            cam(input_tensor=image, targets=[ClassifierOutputTarget(1)])
        grad_flops = counter.get_total_flops()
        dense_flops = flops(self.fcn, image)
        return [
            f"| {self.name} | {2 * height}x{2 * width} | {fmt(grad)} | {fmt(eager)} "
            f"({ratio:.2f}x {'✓' if ratio >= 4 else '✗'}) | {fmt(onnx)} "
            f"({ratio_onnx:.2f}x {'✓' if ratio_onnx >= 4 else '✗'}) | "
            f"{grad_flops / 1e9:.0f} / {dense_flops / 1e9:.0f} = {grad_flops / dense_flops:.1f}x |"
        ]


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """Other work on every core while the block runs: processes multiplying matrices."""
    busy = (
        "import numpy as np\na = np.random.rand(1200, 1200).astype(np.float32)\nwhile True: a @ a"
    )
    workers = [subprocess.Popen([sys.executable, "-c", busy]) for _ in range(processes)]
    try:
        time.sleep(1)
        yield
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()


def last_conv(model: torch.nn.Module) -> torch.nn.Module:
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return convs[-1]


def size_label(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="shapes model only, two sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="vgg16,resnet50,shapes")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    names = ["shapes"] if args.smoke else args.models.split(",")
    repeats = 2 if args.smoke else max(3, args.repeats)
    command = "python benchmarks/run.py" + (" --smoke" if args.smoke else "")
    if not args.smoke and repeats != 5:
        command += f" --repeats {repeats}"
    sections: dict[str, list[str]] = {
        key: []
        for key in (
            "dense",
            "growth",
            "runtime",
            "configs",
            "convert",
            "export",
            "parts",
            "memory",
            "gradcam",
        )
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            print(f"benchmarking {name} ...", flush=True)
            bench = Bench(name, repeats, args.smoke, Path(folder))
            sections["dense"] += bench.dense_vs_sliding()
            growth, runtimes, configs = bench.growth_and_runtimes()
            sections["growth"] += growth
            sections["runtime"] += runtimes
            sections["configs"] += configs
            sections["convert"] += bench.conversion()
            whole, parts, breakdown = bench.export_process()
            sections["export"] += whole
            sections["parts"] += parts
            sections["memory"] += breakdown
            sections["gradcam"] += bench.gradcam()
            del bench
    minutes = (time.perf_counter() - started) / 60
    setup = machine(*VERSIONS)
    report = f"""# Benchmarks

Measured with `{command}` on {setup}, in {minutes:.0f} minutes. Every time is the median of
{repeats} samples after a warm-up, with min–max in brackets (a sample repeats calls shorter
than 50 ms and averages them); ratios compare medians taken in the same run, and compared runs
are timed alternately. Weights are random (the bundled weights for `shapes`). ✓/✗ mark the
targets.

Measured by their own scripts: many images (folder runs, memory against run length), static
int8 and the fp32 share of the machine's matrix-multiply peak in
[many_images.md](many_images.md) (`python benchmarks/many_images.py`); plain against Ray in
[ray_run.md](ray_run.md) (`python benchmarks/ray_run.py`); ONNX classifiers in
[onnx_in.md](onnx_in.md) (`python benchmarks/onnx_in.py`).

## 1. Dense class map against a sliding window

The converted model on an image twice the canonical size, against the original classifier on
every canonical-size crop at the model's stride (batches of 16), both in PyTorch eager.
Target: the time ratio reaches ≥ 95% of the FLOP ratio.

| model | image | windows | sliding window | dense map | time ratio | FLOP ratio | share of FLOP ratio |
|---|---|---:|---:|---:|---:|---:|---|
{chr(10).join(sections["dense"])}

## 2. Cost growth with image size

The converted model in PyTorch eager and in onnxruntime (settings of section 3), timed
alternately. Target: time per FLOP grows by ≤ 10% over the smallest size.

| model | input | GFLOPs | eager ps/FLOP | change | onnxruntime ps/FLOP | change |
|---|---|---:|---:|---|---:|---|
{chr(10).join(sections["growth"])}

## 3. onnxruntime against PyTorch eager

The exported model in onnxruntime (CPU), with the fastest of the settings below, against the
converted model in eager. Target: onnxruntime ≤ 0.5× eager.

| model | input | eager | onnxruntime | ratio |
|---|---|---:|---:|---|
{chr(10).join(sections["runtime"])}

onnxruntime settings tried (graph optimisation level × intra-op threads; "default" lets
onnxruntime choose). `all` adds the NCHWc layout rewrite, which copies the weights into a
blocked layout: faster, at the cost of a second copy of the weights in memory.

| model | input | level | threads | time | chosen |
|---|---|---|---|---:|---|
{chr(10).join(sections["configs"])}

## 4. Conversion

`fc2conv.convert(model, inplace=True)`: wall time, and bytes of parameter or buffer storage
that the converted model holds and the original does not (target: 0 bytes). Its share of the
whole export is in section 5.

| model | time | new weight bytes |
|---|---:|---:|
{chr(10).join(sections["convert"])}

## 5. Export as a whole process

`fc2conv MODEL --out FILE --quiet --weights W` for the three ways of giving weights: DEFAULT (for
the torchvision models, a random checkpoint placed in a private torch hub cache; the bundled
weights for `shapes`), a state-dict file, and none; on a quiet machine, and while one process
per core multiplies matrices ("busy"). It includes the equivalence check, the ONNX checker and the
onnxruntime checks at three sizes. The command runs the PyTorch part in a child process and
checks the written file after that process has ended. Peak RSS is GNU time's `%M`, the largest
of the command's processes; the last column is the peak of all its processes together, sampled
every 10 ms. Target: ≤ 1.5 GB.

| model | weights | machine | wall time | peak RSS | all processes together |
|---|---|---|---:|---:|---:|
{chr(10).join(sections["export"])}

Where the time goes: `fc2conv.export_model` called from a process without PyTorch (what the
command runs), DEFAULT weights, quiet machine; parts as the export reports them (`report.timings`;
a part named "step: detail" is a piece of that step). "PyTorch process" is the child's whole
life, from its start to its exit; "whole" is the call, from importing fc2conv to its return.

| model | part | time | share of the whole |
|---|---|---:|---:|
{chr(10).join(sections["parts"])}

Where the memory goes: the peak RSS of each part in a process of its own (one run each).

| model | part | peak RSS |
|---|---|---:|
{chr(10).join(sections["memory"])}

## 6. Against Grad-CAM

pytorch-grad-cam's `GradCAM` on the original model for one class (forward and backward), against
one pass of the converted model that gives the maps of all classes, on the same image twice the
canonical size. Target: ≥ 4× faster.

| model | image | Grad-CAM, one class | fc2conv eager, all classes | fc2conv onnxruntime, all classes | GFLOPs Grad-CAM / fc2conv |
|---|---|---:|---:|---:|---:|
{chr(10).join(sections["gradcam"])}

## Reading the results

- **Dense map against sliding windows.** The dense pass computes every convolution shared by
  overlapping windows once, so its speed-up follows the FLOP ratio when both runs are equally
  efficient. Passes of the small `shapes` model last about a millisecond; per-call overhead, not
  arithmetic, sets their time, so their rows say little about efficiency.
- **onnxruntime against eager.** Both runtimes use tuned CPU kernels here (oneDNN in PyTorch,
  MLAS in onnxruntime). The convolutions fc2conv makes from Linears compute as matrix products
  in eager PyTorch where oneDNN's convolution is slow (few output positions, e.g. VGG-16's 7x7
  fc6 at 224x224), which speeds up the eager side and makes the 0.5x target harder. The settings
  table records the fastest graph optimisation level; fc2conv uses `all` for heatmaps and
  detection, and `extended` for the checks during export, where the second copy of the weights
  that `all` makes costs memory (`fc2conv.runtime.open_session`).
- **Conversion.** Tracing with torch.fx, shape propagation and about a dozen shape-only runs on
  meta tensors to measure the geometry; the time grows with the number of graph nodes, so
  ResNet-50 (over 170 nodes) takes longer than VGG-16 (under 40). Next to the export it is a
  small share (section 5).
- **Export time.** The parts that do not depend on fc2conv set a floor: importing this CUDA
  build of PyTorch with torchvision (the "imports" part, before any model code runs, and the
  Python start of the child), torch.onnx's first export in a process (it builds its operator
  registry once), writing and reading back the file, and onnxruntime loading it. The checks
  compute: PyTorch runs the converted model at the canonical size (batch 2, and each image
  alone, to measure its float32 noise) and once at each larger size; onnxruntime runs the same
  inputs. What fc2conv did to shorten it: onnxscript's optimizer runs without onnx's shape
  inference (which serialized the whole model with its weights), the weights are written once,
  from the tensors' memory straight into the file, and the larger check sizes use one image.
- **Export memory.** Importing this CUDA build of PyTorch with torchvision and the ONNX tooling
  costs the imports row before any weight is loaded, and `onnx.checker.check_model(path,
  full_check=True)` on a single-file model needs about twice the file by itself, so the checks
  cannot share a process with PyTorch and VGG-16's weights within 1.5 GB. The export therefore
  runs in two steps that never overlap: a child process loads, converts, verifies and exports
  (the weights exist once: the model is built on the meta device and takes the checkpoint's
  memory-mapped tensors; the file is written from the tensors' memory without a copy), then
  exits; the parent, which has not imported torch, checks the written file. The busy rows show
  whether other work on the machine changes the peak.
- **Grad-CAM.** Grad-CAM runs the original classifier forward and backward for one class;
  fc2conv's single pass runs the classifier head at every cell for all classes. The last column
  is the FLOP ratio, the speed-up to expect at equal arithmetic efficiency: where it is below
  4x, eager PyTorch cannot reach the target, and only faster kernels (onnxruntime) can.
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
