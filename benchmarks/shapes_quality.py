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
from fc2conv.pipeline import prepare
from fc2conv.shapes.quality import evaluate


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
    converted = prepare("shapes").converted
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        model: object = converted
        if args.runtime == "onnx":
            model = Path(folder) / "shapes_fcn.onnx"
            fc2conv.export_onnx(converted, model)
        quality = evaluate(model, range(args.first_seed, args.first_seed + args.scenes))
    seconds = time.perf_counter() - start
    last = args.first_seed + args.scenes - 1
    command = f"python benchmarks/shapes_quality.py --scenes {args.scenes}"
    if args.first_seed != 1000 or args.runtime != "onnx":
        command += f" --first-seed {args.first_seed} --runtime {args.runtime}"
    boxes = quality.true_positives + quality.false_positives

    def mark(met: bool) -> str:
        return "✓" if met else "✗ (missed)"

    report = f"""# Quality of the bundled shapes classifier

Measured with `{command}` ({args.runtime}, {seconds:.0f} s): {quality.scenes} generated
640x480 scenes, seeds {args.first_seed} to {last}, none picked by hand.

| measure | result | target |
|---|---:|---:|
| detection precision at IoU >= 0.5 | {quality.precision:.3f} ({quality.true_positives} of {boxes} boxes) | >= 0.97 {mark(quality.precision >= 0.97)} |
| detection recall at IoU >= 0.5 | {quality.recall:.3f} ({quality.true_positives} of {quality.objects} shapes) | >= 0.97 {mark(quality.recall >= 0.97)} |
| heatmap peak inside a shape of its class | {quality.peak_rate:.3f} ({quality.peaks_inside} of {quality.peaks} classes present) | >= 0.95 {mark(quality.peak_rate >= 0.95)} |

Each scene holds 3 to 6 shapes of 32 to 96 px: from half the 64x64 window to one and a half
windows (the classifier was trained on shapes of about 43 px in its window). Detection and
heatmaps run their default image pyramids (scales from 2 down to the scale at which the image
is one window). A box counts when it matches a not yet matched shape of its class with
IoU >= 0.5; for each class present, the peak of its heatmap (the best cell over all scales)
must lie inside a shape of that class.
"""
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
