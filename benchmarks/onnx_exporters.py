"""Every torchvision classifier through both PyTorch ONNX exporters and fc2conv's ONNX path;
writes its table into docs/onnx_in.md (between the ``exporters`` markers).

    python benchmarks/onnx_exporters.py            # all 68, both exporters (about half an hour)
    python benchmarks/onnx_exporters.py resnet18   # some models only (the table is not written)
    python benchmarks/onnx_exporters.py --from-log LOG ...   # the table from runs' printed
                                                         # lines (runs stopped early, parts)

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

from common import ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))

from exporters import CNN_MODELS, EXPORTERS, RTOL, Outcome, sweep_one

DOC = ROOT / "docs" / "onnx_in.md"
BEGIN, END = "<!-- exporters:begin -->", "<!-- exporters:end -->"


def cell(outcome: Outcome) -> str:
    if outcome.status == "converted" and outcome.reason:
        return f"**wrong map**: {outcome.reason}"
    if outcome.status == "converted":
        errors = f"{outcome.canonical_error:.1e} / {outcome.larger_error:.1e}"
        if outcome.allowed > RTOL:
            errors += f" (PyTorch's own noise {outcome.noise:.1e})"
        return errors if outcome.exact else f"**differs**: {errors}"
    return f"{outcome.status}: {outcome.reason.replace('|', '/')}"


def table(cells: dict[tuple[str, str], str], models: list[str], minutes: float | None) -> str:
    """The doc's block from each (model, exporter)'s printed cell (see :func:`cell`)."""
    measured = [name for name in models if all((name, e) in cells for e in EXPORTERS)]
    exact = re.compile(r"^[0-9.e+-]+ / [0-9.e+-]+( \(PyTorch's own noise [0-9.e+-]+\))?$")
    counts = {e: sum(bool(exact.match(cells[(n, e)])) for n in measured) for e in EXPORTERS}
    when = (
        f", in {minutes:.0f} minutes" if minutes is not None else " (table from its printed lines)"
    )
    partial = (
        f" **Partial: {len(measured)} of {len(models)} models were measured before the run "
        "was stopped; the others are marked not run.**"
        if len(measured) < len(models)
        else ""
    )
    lines = [
        BEGIN,
        "## torchvision's classifiers through both PyTorch exporters",
        "",
        f"Measured with `python benchmarks/onnx_exporters.py` on {machine()}{when}."
        f"{partial} Each of torchvision's {len(models)} CNN classifiers, with "
        "calibrated random weights, exported with a dynamic batch by `torch.onnx.export(..., "
        "dynamo=False)` (TorchScript) and `dynamo=True`, then converted by `fc2conv FILE.onnx`. "
        "Each cell: the converted file's relative error in onnxruntime against fc2conv's "
        "PyTorch conversion of the same model, at the canonical size / at 37 rows and 101 "
        f"columns more. An exact conversion is within {RTOL:.0e} at both, or within ten times "
        "PyTorch's own float32 noise on the same images (one at a time against the batch, and "
        "without oneDNN) where deep networks make that larger, as `fc2conv.export_onnx` checks "
        "its files; that noise is shown where it sets the bound.",
        "",
        f"Exact: TorchScript exporter {counts['torchscript']} of {len(measured)}, dynamo "
        f"exporter {counts['dynamo']} of {len(measured)} measured.",
        "",
        "| model | TorchScript exporter | dynamo exporter |",
        "|---|---|---|",
    ]
    for name in models:
        row = [cells.get((name, exporter), "not run") for exporter in EXPORTERS]
        lines.append(f"| {name} | {row[0]} | {row[1]} |")
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model names (default: all)")
    parser.add_argument(
        "--from-log", type=Path, nargs="+", help="write the table from the output of runs"
    )
    args = parser.parse_args()
    models = args.models or CNN_MODELS
    cells: dict[tuple[str, str], str] = {}
    minutes: float | None = None
    if args.from_log:
        for line in (line for log in args.from_log for line in log.read_text().splitlines()):
            found = re.match(r"^(\S+) (torchscript|dynamo): (.*)$", line)
            if found:
                cells[(found[1], found[2])] = found[3]
    else:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            for name in models:
                for exporter in EXPORTERS:
                    cells[(name, exporter)] = cell(sweep_one(name, exporter, Path(folder)))
                    print(f"{name} {exporter}: {cells[(name, exporter)]}", flush=True)
        minutes = (time.perf_counter() - started) / 60
    if args.models and not args.from_log:
        return
    block = table(cells, list(models), minutes)
    text = DOC.read_text()
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
