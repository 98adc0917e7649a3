"""One small model of every timm family through fc2conv; writes docs/timm.md.

    python benchmarks/timm_zoo.py            # every family (tens of minutes)
    python benchmarks/timm_zoo.py --families resnet,vgg

Each model is built with random weights (batch-norm statistics measured on random images, so
that outputs are of order one and stable in float32), converted at its configured input size
and verified against the original; a refusal is recorded with its reason. ``pytest -m
timm_zoo`` runs the same check and fails on any mismatch (a converted model that differs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import timm
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_timm import check_timm_model, family_models  # noqa: E402
from zoo import cpu  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=None, help="comma-separated timm module names")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "timm.md")
    args = parser.parse_args()
    chosen = family_models()
    if args.families:
        wanted = set(args.families.split(","))
        chosen = {family: name for family, name in chosen.items() if family in wanted}
    started = time.perf_counter()
    rows, counts = [], {"converted": 0, "refused": 0, "failed": 0}
    for family, name in sorted(chosen.items()):
        print(f"{family}: {name}", flush=True)
        row = check_timm_model(name)
        counts[row["result"]] += 1
        geometry = row.get("geometry") or ""
        error = f"{row['relative error']:.1e}" if "relative error" in row else ""
        rows.append(
            f"| {family} | {name} | {row['result']} | {row.get('reason', '')} | {error} | "
            f"{geometry} | {row['seconds']:.1f} s |"
        )
    minutes = (time.perf_counter() - started) / 60
    lines = [
        "# timm: one small model per family",
        "",
        f"Written by `python benchmarks/timm_zoo.py` in {minutes:.0f} minutes (timm "
        f"{timm.__version__}, torch {torch.__version__}, {cpu()}). Random weights with batch-norm "
        "statistics measured on random images; converted at the model's configured input size "
        "(`pretrained_cfg`); relative error max|a-b| / max|a| against the original at that size, "
        "batch 2. A refusal names the construct in the way.",
        "",
        f"{counts['converted']} converted, {counts['refused']} refused, {counts['failed']} "
        "failed otherwise (the model itself did not build or run here).",
        "",
        "| family | model | result | reason | relative error | geometry | time |",
        "|---|---|---|---|---:|---|---:|",
        *rows,
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {counts}")


if __name__ == "__main__":
    main()
