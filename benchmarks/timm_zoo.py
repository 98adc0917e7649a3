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
import signal
import sys
import time
from pathlib import Path

import timm  # noqa: F401  (without timm the script stops here)
from common import ROOT, machine

import fc2conv

sys.path.insert(0, str(ROOT / "tests"))

from timm_models import check_timm_model, family_models


class TookTooLong(Exception):
    pass


def _too_long(signum: int, frame: object) -> None:
    raise TookTooLong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=None, help="comma-separated timm module names")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "timm.md")
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows already in --out, run the rest"
    )
    parser.add_argument(
        "--timeout", type=int, default=300, help="seconds a model may take before it is skipped"
    )
    args = parser.parse_args()
    chosen = family_models()
    if args.families:
        wanted = set(args.families.split(","))
        chosen = {family: name for family, name in chosen.items() if family in wanted}
    rows: list[str] = []
    counts = {"converted": 0, "refused": 0, "failed": 0, "MISMATCH": 0, "timed out": 0}
    resumed = args.resume and args.out.exists()
    if resumed:
        for line in args.out.read_text().splitlines():
            cells = [cell.strip() for cell in line.split("|")[1:-1]]
            if len(cells) == 7 and cells[0] in chosen and cells[1] == chosen[cells[0]]:
                rows.append(line)
                counts[cells[2]] += 1
                del chosen[cells[0]]
    started = time.perf_counter()
    families = sorted(chosen.items())
    signal.signal(signal.SIGALRM, _too_long)
    for done, (family, name) in enumerate(families):
        print(f"{family}: {name}", flush=True)
        signal.alarm(args.timeout)
        try:
            row = check_timm_model(name)
        except fc2conv.EquivalenceError as exc:  # a converted model that differs: recorded
            row = {"result": "MISMATCH", "reason": str(exc).splitlines()[0][:240], "seconds": 0.0}
        except TookTooLong:
            reason = f"not finished within {args.timeout} s on this machine"
            row = {"result": "timed out", "reason": reason, "seconds": float(args.timeout)}
        finally:
            signal.alarm(0)
        counts[row["result"]] += 1
        geometry = row.get("geometry") or ""
        error = f"{row['relative error']:.1e}" if "relative error" in row else ""
        reason = str(row.get("reason", "")).replace("|", "/")
        rows.append(
            f"| {family} | {name} | {row['result']} | {reason} | {error} | "
            f"{geometry} | {row['seconds']:.1f} s |"
        )
        rows.sort()
        left = [f for f, _ in families[done + 1 :]]
        seconds = time.perf_counter() - started
        write(args.out, rows, counts, seconds, left, resumed)  # never lose a row
    print(f"wrote {args.out}: {counts}")


def write(
    out: Path,
    rows: list[str],
    counts: dict[str, int],
    seconds: float,
    left: list[str],
    resumed: bool = False,
) -> None:
    command = "python benchmarks/timm_zoo.py" + (" --resume" if resumed else "")
    took = (f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} s") + (
        " for its last part" if resumed else ""
    )
    status = (
        f"Written by `{command}` in {took}"
        if not left
        else f"Partial: written by `{command}` after {took}, {len(left)} families still to "
        f"run ({', '.join(left)})"
    )
    lines = [
        "# timm: one small model per family",
        "",
        f"{status} ({machine('timm', 'torch')}). Random "
        "weights with batch-norm statistics measured on random images; converted at the "
        "model's configured input size (`pretrained_cfg`); relative error max|a-b| / max|a| "
        "against the original at that size, batch 2. A refusal names the construct in the way.",
        "",
        f"{counts['converted']} converted, {counts['refused']} refused, {counts['failed']} "
        "failed otherwise (the model itself did not build or run here), "
        f"{counts['MISMATCH']} converted but differing from the original, "
        f"{counts['timed out']} not finished within the time each model is given.",
        "",
        "| family | model | result | reason | relative error | geometry | time |",
        "|---|---|---|---|---:|---|---:|",
        *rows,
    ]
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
