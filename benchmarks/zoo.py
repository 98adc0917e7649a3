"""Every torchvision classifier through fc2conv; writes docs/zoo.md.

    python benchmarks/zoo.py             # conversion of every CNN and Swin (a few minutes)
    python benchmarks/zoo.py --export    # also exports every model of `fc2conv list` (slow)

The conversion figures come from the same check as ``pytest -m zoo`` (random He-normal weights
with non-trivial batch-norm statistics, so that outputs are of order one), the export figures
from the same export and checks as ``pytest -m onnx_zoo``. A model that fails is reported as
failed, with the reason; nothing stops the sweep.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))

from helpers import calibrate, onnxruntime_agrees
from torchvision_models import ALL_MODELS, CNN_MODELS, check_model

import fc2conv
from fc2conv.sources import load_model, supported_models


def conversion_rows() -> list[str]:
    rows = []
    for name in [*CNN_MODELS, *sorted(n for n in ALL_MODELS if n.startswith("swin"))]:
        print(f"converting {name}", flush=True)
        try:
            row = check_model(name)
        except Exception as exc:  # reported in the table
            rows.append(f"| {name} | failed: {type(exc).__name__}: {str(exc)[:120]} | | | | | | |")
            continue
        geometry = row["geometry"]
        assert isinstance(geometry, fc2conv.Geometry)
        rows.append(
            f"| {name} | {row['parameters']:,} | {row['linears']} | "
            f"{row['relative error']:.1e} | {geometry.stride[0]}x{geometry.stride[1]} | "
            f"{geometry.min_size[0]}x{geometry.min_size[1]} | "
            f"{geometry.window[0]}x{geometry.window[1]} | {1000 * float(row['seconds']):.0f} ms |"
        )
    return rows


def export_rows(folder: Path, only: set[str] | None = None) -> list[str]:
    rows = []
    for name in supported_models():
        if only and name not in only:
            continue
        print(f"exporting {name}", flush=True)
        start = time.perf_counter()
        try:
            loaded = load_model(name, "DEFAULT" if name == "shapes" else "none")
            model = loaded.model if name == "shapes" else calibrate(loaded.model, loaded.input_size)
            converted = fc2conv.convert(model, loaded.input_size, name=name, inplace=True)
            report = fc2conv.export_onnx(converted, folder / f"{name}.onnx", force=True)
            height, width = converted.geometry.canonical_size
            size = (height + converted.geometry.stride[0], width + converted.geometry.stride[1])
            extra = onnxruntime_agrees(converted, report.path, size)
        except Exception as exc:  # reported in the table
            rows.append(f"| {name} | failed: {type(exc).__name__}: {str(exc)[:160]} | | | |")
            continue
        finally:
            for file in folder.iterdir():
                file.unlink()
        checks = ", ".join(
            f"{c.height}x{c.width}: {c.relative_error:.1e}"
            + (f" (tolerance {c.tolerance:.1e})" if c.tolerance > 1e-4 else "")
            for c in report.checks
        )
        seconds = time.perf_counter() - start
        rows.append(
            f"| {name} | passed | {checks} | {size[0]}x{size[1]}: {extra:.1e} | {seconds:.0f} s |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", action="store_true", help="also export every listed model")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "zoo.md")
    parser.add_argument(
        "--exports-only",
        default=None,
        metavar="NAMES",
        help="re-export these models (comma-separated) and print their rows; writes nothing",
    )
    args = parser.parse_args()
    if args.exports_only:
        with tempfile.TemporaryDirectory() as folder:
            for row in export_rows(Path(folder), set(args.exports_only.split(","))):
                print(row)
        return
    started = time.perf_counter()
    conversions = conversion_rows()
    exports: list[str] = []
    if args.export:
        with tempfile.TemporaryDirectory() as folder:
            exports = export_rows(Path(folder))
    minutes = (time.perf_counter() - started) / 60
    command = "python benchmarks/zoo.py" + (" --export" if args.export else "")
    lines = [
        "# Model zoo: every torchvision classifier through fc2conv",
        "",
        f"Written by `{command}` in {minutes:.0f} minutes "
        f"({machine('torch', 'torchvision', 'onnxruntime')}). Random He-normal weights, "
        "batch 2, float32.",
        "",
        "## Conversion",
        "",
        "With non-trivial batch-norm statistics drawn at random (`reinit` in tests/helpers.py). "
        "Relative error is max|a-b| / max|a| against the original logits at the canonical size; "
        "time is `fc2conv.convert(..., inplace=True)`. Swin converts and runs at any size in "
        "PyTorch but is not exported (see the README).",
        "",
        "| model | parameters | Linears converted | relative error | stride | minimal input "
        "| window | conversion time |",
        "|---|---:|---:|---:|---|---|---|---:|",
        *conversions,
    ]
    if exports:
        lines += [
            "",
            "## Export",
            "",
            "With batch-norm statistics measured on random images, as training leaves them "
            "(`calibrate` in tests/helpers.py): with random statistics, deep gated networks "
            "(EfficientNet-B3 and larger, RegNet-Y) give logits of 1e9 that float32 cannot "
            "compute stably, and the export refuses to check them. "
            "`fc2conv.export_onnx` of every model in `fc2conv list`: onnx.checker's full check, "
            "then onnxruntime against PyTorch at the three check sizes (relative error; the "
            "tolerance is 1e-4, or ten times PyTorch's own float32 noise where that is larger, "
            "shown when it is), and independently at one stride more than the canonical size, "
            "a size the export does not check.",
            "",
            "| model | result | onnxruntime at the check sizes | another size | time |",
            "|---|---|---|---|---:|",
            *exports,
        ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
