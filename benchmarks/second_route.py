"""The second route against the first on the same classifiers; writes docs/second_route.md.

    python benchmarks/second_route.py

Each torchvision classifier (seeded random weights) is exported twice with ``fc2conv MODEL
--out``, from the repository's root, through :func:`asserting`, a factory this module offers as
your own code: once as it is (torch.fx, the first route) and once behind a forward that asserts
the input's size, which torch.fx cannot trace (torch.onnx + the ONNX rules, the second route).
Reported: each route's seconds (the whole command), its relative error at the canonical size
against PyTorch, whether the geometries agree, and how far the two files' maps are from each
other on a larger, non-square image, in onnxruntime: the two routes share no conversion code, so
that is an independent check of both.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]  # (``common`` is imported in main: the export's
# child process imports this module as your own code, without benchmarks/ on its path)

MODELS = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "googlenet", "regnet_y_400mf")
SIZE = (224, 224)
LARGER = (320, 416)  # height, width: off the stride grid of most of them
FACTORY = "benchmarks.second_route:asserting"


def asserting(name: str, check_size: bool = True):  # type: ignore[no-untyped-def]
    """torchvision's ``name`` with seeded random weights; with ``check_size``, behind a forward
    that asserts the canonical size (which torch.fx cannot trace)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, num_classes=10)
    if name == "googlenet":
        model = torchvision.models.get_model(name, weights=None, num_classes=10, aux_logits=False)
    if not check_size:
        return model.eval()

    class SizeAsserting(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert tuple(x.shape[-2:]) == SIZE, f"{name} classifies {SIZE} images"
            return self.inner(x)

    return SizeAsserting(model).eval()


def export(name: str, check_size: bool, out: Path) -> tuple[float, str]:
    """Export with the command line; its seconds and what it printed."""
    command = [
        sys.executable, "-m", "fc2conv", FACTORY, "--input-size", f"{SIZE[0]}x{SIZE[1]}",
        "--model-arg", f"name={name}", "--model-arg", f"check_size={check_size}",
        "--imagenet", "--out", str(out), "--force",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{name}: {done.stderr.strip()}")
    return seconds, done.stdout


def canonical_error(printed: str) -> str:
    """The relative error at the canonical size that the export printed."""
    wanted = f"at {SIZE[0]}x{SIZE[1]}: 1x1 map, relative error "
    line = next(line for line in printed.splitlines() if wanted in line)
    return line.split("relative error ")[1]


def main() -> None:
    from common import machine, ort_session

    from fc2conv import compare
    from fc2conv.export.onnx_file import read_metadata

    rows = []
    image = np.random.default_rng(0).standard_normal((2, 3, *LARGER)).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        for name in MODELS:
            first, second = Path(folder) / f"{name}_fx.onnx", Path(folder) / f"{name}_onnx.onnx"
            fx_seconds, fx_printed = export(name, False, first)
            onnx_seconds, onnx_printed = export(name, True, second)
            assert "route: torch.onnx + ONNX rules" in onnx_printed, onnx_printed
            maps = []
            for path in (first, second):
                session = ort_session(path)
                maps.append(session.run(None, {session.get_inputs()[0].name: image})[0])
            same = read_metadata(first)["geometry"] == read_metadata(second)["geometry"]
            between = compare.relative_error(maps[0], maps[1])
            rows.append(
                f"| {name} | {fx_seconds:.1f} | {onnx_seconds:.1f} | "
                f"{canonical_error(fx_printed)} | {canonical_error(onnx_printed)} | "
                f"{'yes' if same else 'NO'} | {maps[0].shape[-2]}x{maps[0].shape[-1]} | "
                f"{between:.1e} |"
            )
            print(rows[-1], flush=True)
    text = f"""# The second route, measured

For a classifier whose forward torch.fx cannot trace (an `assert` on the input's size, a
branch on a shape in its own forward), fc2conv exports the original with torch.onnx at its
canonical size, checks that export against PyTorch, and converts the exported graph with the
ONNX rules (see README, "Models whose forward torch.fx cannot trace"). Here both routes convert
the same classifiers (torchvision, seeded random weights, 10 classes): as they are (torch.fx) and
behind a forward that asserts the size (the second route). Each route shares no conversion code
with the other, so their maps agreeing on a larger image checks both.

{machine("torch", "onnxruntime")}

    python benchmarks/second_route.py

| model | torch.fx route, s | second route, s | torch.fx route: relative error at {SIZE[0]}x{SIZE[1]} | second route | same geometry | map at {LARGER[0]}x{LARGER[1]} | the two routes' maps, relative difference |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Seconds are the whole `fc2conv MODEL --out` command (Python start, load, convert, verify,
export and the onnxruntime checks), one run each. The relative error at the canonical size is
the converted file against PyTorch (torch.fx route) and against the torch.onnx export of the
original, which is itself checked against PyTorch (second route).
"""
    (ROOT / "docs" / "second_route.md").write_text(text, encoding="utf-8")
    print("wrote docs/second_route.md")


if __name__ == "__main__":
    main()
