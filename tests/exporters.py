"""torchvision's classifiers through both PyTorch ONNX exporters and back through fc2conv's ONNX
path, compared with fc2conv's PyTorch path on the same model (used by
``tests/test_onnx_exporters.py`` and ``benchmarks/onnx_exporters.py``).

Each model gets calibrated random weights (outputs of order one), is exported with a dynamic
batch as a user would (``torch.onnx.export(..., dynamo=False)`` with ``dynamic_axes``, or
``dynamo=True`` with ``dynamic_shapes``), and the file is converted with ``convert_onnx``. The
converted file runs in onnxruntime at the canonical size and at a larger, non-square size off the
stride grid; both maps are compared with ``fc2conv.convert`` of the same PyTorch model, within
1e-4 relative or ten times PyTorch's own float32 noise on the same images where deep networks
make that larger (as ``fc2conv.export_onnx`` checks its files).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from helpers import calibrate

import fc2conv
from fc2conv import compare

TRANSFORMERS = {"vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14", "maxvit_t"}
CNN_MODELS = [
    name
    for name in torchvision.models.list_models(module=torchvision.models)
    if name not in TRANSFORMERS and not name.startswith("swin")
]
EXPORTERS = ("torchscript", "dynamo")
#: relative error allowed against the PyTorch path (float32, two runtimes)
RTOL = 1e-4


@dataclass
class Outcome:
    model: str
    exporter: str
    status: str  #: "converted", "refused" (fc2conv says why) or "export failed"
    canonical_error: float | None = None
    larger_error: float | None = None
    larger_size: tuple[int, int] | None = None
    reason: str = ""
    seconds: float = 0.0  #: convert_onnx, with its checks
    #: PyTorch against itself on the same images (one at a time against the batch, and without
    #: oneDNN): deep networks' float32 noise, which a second runtime cannot be held below
    noise: float = 0.0

    @property
    def allowed(self) -> float:
        """The error an exact conversion stays within: RTOL, or ten times PyTorch's own noise
        where that is larger (as the export's own check allows)."""
        return max(RTOL, 10 * self.noise)

    @property
    def exact(self) -> bool:
        errors = (self.canonical_error, self.larger_error)
        return self.status == "converted" and all(
            e is not None and e <= self.allowed for e in errors
        )


def canonical_size(name: str) -> tuple[int, int]:
    return (299, 299) if name == "inception_v3" else (224, 224)


def build(name: str) -> torch.nn.Module:
    kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    return calibrate(model, canonical_size(name))


def export(
    model: torch.nn.Module,
    size: tuple[int, int],
    path: Path,
    exporter: str,
    opset: int | None = None,
) -> None:
    """``model`` written to ``path`` by ``exporter`` with a dynamic batch (TorchScript: at
    ``opset``, default its own)."""
    images = torch.randn(2, 3, *size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                model,
                (images,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=["x"],
                output_names=["logits"],
                dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            )
        else:
            batch = torch.export.Dim("batch", min=1, max=64)
            program = torch.onnx.export(
                model, (images,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False
            )
            assert program is not None
            program.save(str(path))


def run_onnx(path: Path, images: np.ndarray) -> np.ndarray:
    from fc2conv.runtime import open_session

    session = open_session(str(path), optimization="basic")
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def sweep_one(name: str, exporter: str, folder: Path) -> Outcome:
    """Export ``name`` with ``exporter``, convert the file, compare with the PyTorch path."""
    model = build(name)
    size = canonical_size(name)
    path = folder / f"{name}_{exporter}.onnx"
    try:
        export(model, size, path, exporter)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Outcome(name, exporter, "export failed", reason=first[:200])
    start = time.perf_counter()
    try:
        converted = fc2conv.convert_onnx(path, folder / f"{path.stem}_fcn.onnx", input_size=size)
    except fc2conv.Fc2ConvError as exc:
        return Outcome(name, exporter, "refused", reason=" ".join(str(exc).split())[:300])
    seconds = time.perf_counter() - start
    reference = fc2conv.convert(model, size, name=name)
    larger = (size[0] + 37, size[1] + 101)
    errors, noise = [], 0.0
    generator = torch.Generator().manual_seed(1)
    for height, width in (size, larger):
        images = torch.randn(2, 3, height, width, generator=generator)
        with torch.no_grad():
            want = torch.cat([reference(images[i : i + 1]) for i in range(2)]).numpy()
            batched = reference(images).numpy()
            with torch.backends.mkldnn.flags(enabled=False):
                native = reference(images).numpy()
        noise = max(
            noise, compare.relative_error(want, batched), compare.relative_error(batched, native)
        )
        got = run_onnx(converted.path or path, images.numpy())
        if got.shape != want.shape:
            return Outcome(
                name, exporter, "converted", reason=f"map {got.shape} against {want.shape}"
            )
        assert float(np.abs(want).max()) > 0.1, "outputs too small to compare"
        errors.append(compare.relative_error(want, got))
    for written in folder.glob(f"{path.stem}*"):
        written.unlink()
    return Outcome(
        name, exporter, "converted", errors[0], errors[1], larger, seconds=seconds, noise=noise
    )
