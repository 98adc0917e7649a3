"""Quality of the bundled shapes classifier as a detector and a heatmap source.

    python benchmarks/shapes_quality.py --scenes 50

Exports the converted model to ONNX, then runs it in onnxruntime over seeded generated scenes
(seeds 1000, 1001, ...; none hand-picked) and prints detection precision/recall at IoU ≥ 0.5 and
how often each present class's heatmap peak lies inside a shape of that class.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import fc2conv
from fc2conv.models import load_model
from fc2conv.shapes import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--runtime", choices=["onnx", "torch"], default="onnx")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "shapes_quality.md",
        help="where to write the results (Markdown)",
    )
    args = parser.parse_args()
    loaded = load_model("shapes")
    converted = fc2conv.convert(loaded.model, loaded.input_size, name="shapes")
    converted.metadata.update(loaded.metadata)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        model: object = converted
        if args.runtime == "onnx":
            model = Path(folder) / "shapes_fcn.onnx"
            fc2conv.export_onnx(converted, model)
        quality = evaluate(model, range(args.first_seed, args.first_seed + args.scenes))
    seconds = time.perf_counter() - start
    print(
        f"scenes: {quality.scenes} (seeds {args.first_seed}..{args.first_seed + args.scenes - 1}), "
        f"runtime: {args.runtime}, {seconds:.0f} s"
    )
    print(
        f"detection: {quality.objects} shapes, {quality.true_positives} true positives, "
        f"{quality.false_positives} false positives"
    )
    print(f"precision {quality.precision:.3f}  recall {quality.recall:.3f}  (IoU >= 0.5)")
    print(
        f"heatmap peaks inside a shape of their class: {quality.peaks_inside}/{quality.peaks} "
        f"= {quality.peak_rate:.3f}"
    )


if __name__ == "__main__":
    main()
