"""A folder of 200 scenes through the bundled model, plain and on a local Ray cluster, in one run;
writes docs/ray_run.md.

    pip install -e ".[ray]" && python benchmarks/ray_run.py

Both runs are the command line (`fc2conv detect shapes_fcn.onnx FOLDER --jsonl ...`), one after
the other, with `--ray` for the second: a local Ray started by the command with this machine's
cores, two actors of one CPU each. Wall time includes each command's start (and Ray's).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine
from PIL import Image

from fc2conv.shapes.scenes import draw_scene


def main() -> None:
    setup = machine("ray")  # imports ray: without it the script stops here

    work = Path(tempfile.mkdtemp(prefix="fc2conv-ray-"))
    try:
        cli = [sys.executable, "-m", "fc2conv"]
        model = work / "shapes_fcn.onnx"
        subprocess.run([*cli, "shapes", "--out", str(model), "--quiet"], check=True)
        folder = work / "scenes"
        folder.mkdir()
        for seed in range(10000, 10200):
            scene = draw_scene(seed, width=640, height=480)
            Image.fromarray(scene.image).save(folder / f"{seed}.png")
        rows, results, rates = [], {}, []
        for label, extra in (("plain", []), ("Ray, local, 2 actors", ["--ray"])):
            out = work / f"{len(results)}.jsonl"
            start = time.perf_counter()
            done = subprocess.run(
                [*cli, "detect", str(model), str(folder), "--jsonl", str(out), "--quiet", *extra],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - start
            if done.returncode:
                raise SystemExit(done.stderr)
            records = [json.loads(line) for line in out.read_text().splitlines()]
            results[label] = {r["path"]: r["detections"] for r in records}
            rows.append(f"| {label} | {wall:.1f} | {len(records) / wall:.2f} |")
            rates.append(len(records) / wall)
        same = results["plain"] == results["Ray, local, 2 actors"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    slower = """
On one machine of few cores Ray costs more than it gives: its own processes (GCS, raylet,
agents) and the hand-over of every image through the object store share the cores with the
actors, each of which runs onnxruntime with one thread. Ray is for collections larger than one
machine: on a cluster each node adds its actors; on a single machine the plain run is faster.
"""
    text = f"""# Many images on Ray

Measured with `python benchmarks/ray_run.py` on {setup}: `fc2conv detect shapes_fcn.onnx FOLDER
--jsonl run.jsonl` over 200 generated scenes of 640×480, plain and with `--ray` (a local cluster
started by the command, two actors of one CPU each). Wall time of the whole command, start-up
included.

| run | seconds | images/s |
|---|---|---|
{chr(10).join(rows)}

The detections of every image are the same in both runs: {"yes" if same else "NO"}.
{slower if rates[1] < rates[0] else ""}"""
    (ROOT / "docs" / "ray_run.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
