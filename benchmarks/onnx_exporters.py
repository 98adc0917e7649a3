"""Every torchvision classifier through both PyTorch ONNX exporters and fc2conv's ONNX path;
writes its table into docs/onnx_in.md (between the ``exporters`` markers).

    python benchmarks/onnx_exporters.py            # all 68, both exporters (about half an hour)
    python benchmarks/onnx_exporters.py resnet18   # some models only (the table is not written)

Each model (calibrated random weights, outputs of order one) is exported with a dynamic batch by
``torch.onnx.export(dynamo=False)`` and by ``torch.onnx.export(dynamo=True)``; the file is
converted with ``fc2conv.convert_onnx`` and its map compared in onnxruntime with
``fc2conv.convert`` of the same PyTorch model, at the canonical size and at a larger, non-square
size off the stride grid (tests/exporters.py).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from exporters import CNN_MODELS, EXPORTERS, RTOL, Outcome, sweep_one  # noqa: E402

DOC = ROOT / "docs" / "onnx_in.md"
BEGIN, END = "<!-- exporters:begin -->", "<!-- exporters:end -->"


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cell(outcome: Outcome) -> str:
    if outcome.exact:
        return f"{outcome.canonical_error:.1e} / {outcome.larger_error:.1e}"
    if outcome.status == "converted" and outcome.reason:
        return f"**wrong map**: {outcome.reason}"
    if outcome.status == "converted":
        return f"**differs**: {outcome.canonical_error:.1e} / {outcome.larger_error:.1e}"
    return f"{outcome.status}: {outcome.reason.replace('|', '/')}"


def table(outcomes: dict[tuple[str, str], Outcome], models: list[str], minutes: float) -> str:
    counts = {
        exporter: sum(outcomes[(name, exporter)].exact for name in models) for exporter in EXPORTERS
    }
    lines = [
        BEGIN,
        "## torchvision's classifiers through both PyTorch exporters",
        "",
        f"Measured with `python benchmarks/onnx_exporters.py` on {cpu()} (2 cores) in "
        f"{minutes:.0f} minutes. Each of torchvision's {len(models)} CNN classifiers, with "
        "calibrated random weights, exported with a dynamic batch by `torch.onnx.export(..., "
        "dynamo=False)` (TorchScript) and `dynamo=True`, then converted by `fc2conv FILE.onnx`. "
        "Each cell: the converted file's relative error in onnxruntime against fc2conv's "
        "PyTorch conversion of the same model, at the canonical size / at 37 rows and 101 "
        f"columns more (an exact conversion is within {RTOL:.0e} at both).",
        "",
        f"Exact: TorchScript exporter {counts['torchscript']} of {len(models)}, dynamo "
        f"exporter {counts['dynamo']} of {len(models)}.",
        "",
        "| model | TorchScript exporter | dynamo exporter | conversion (s) |",
        "|---|---|---|---|",
    ]
    for name in models:
        row = [outcomes[(name, exporter)] for exporter in EXPORTERS]
        seconds = " / ".join(f"{o.seconds:.1f}" if o.seconds else "–" for o in row)
        lines.append(f"| {name} | {cell(row[0])} | {cell(row[1])} | {seconds} |")
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model names (default: all)")
    args = parser.parse_args()
    models = args.models or CNN_MODELS
    outcomes: dict[tuple[str, str], Outcome] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for name in models:
            for exporter in EXPORTERS:
                outcome = sweep_one(name, exporter, Path(folder))
                outcomes[(name, exporter)] = outcome
                print(f"{name} {exporter}: {cell(outcome)}", flush=True)
    if args.models:
        return
    block = table(outcomes, list(models), (time.perf_counter() - started) / 60)
    text = DOC.read_text()
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
