"""Every image-classifier class of the installed transformers that tests/hf_models.py builds, as a
saved checkpoint folder through ``fc2conv hf:FOLDER``; writes docs/hf.md.

    python benchmarks/hf_classes.py

Each class gets a small random configuration (three classes, weights calibrated to outputs of
order one), saved with ``save_pretrained`` and an image-processor configuration of 64×64, then
loaded, converted and verified by ``fc2conv.prepare``: relative error at the canonical size, or
the refusal with its reason.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))

import torch
import transformers
from hf_models import classes, model_class, save_checkpoint

import fc2conv


class Logits(torch.nn.Module):
    """The original transformers model as logits (what ``fc2conv.verify`` compares with)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


def row(name: str, folder: Path) -> str:
    save_checkpoint(name, folder)
    label = model_class(transformers, name).__name__
    start = time.perf_counter()
    try:
        prepared = fc2conv.prepare(f"hf:{folder}")
        original = transformers.AutoModelForImageClassification.from_pretrained(folder)
        report = fc2conv.verify(Logits(original.eval()), prepared.converted, rtol=1e-5)
    except fc2conv.Fc2ConvError as exc:
        reason = " ".join(str(exc).split()).replace("|", "/")
        return f"| {label} | refused | {reason} |"
    seconds = time.perf_counter() - start
    whole = prepared.converted.plan.notes
    kept = next((note for note in whole if note.startswith("torch.fx cannot trace")), "")
    detail = f"{report.relative_error:.1e}; {prepared.converted.geometry}; {seconds:.1f} s"
    if kept:
        detail += f"; {kept}"
    return f"| {label} | converts | {detail} |"


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in classes():
            rows.append(row(name, Path(folder) / name))
            print(rows[-1], flush=True)
    text = f"""# Hugging Face image classifiers

`fc2conv hf:REPOSITORY` or `fc2conv hf:FOLDER` on every image-classifier class of transformers
{transformers.__version__} that the tests build. Measured with `python benchmarks/hf_classes.py`
on {machine()}: each class with a small random configuration of three classes (weights
calibrated so that outputs are of order one), saved with `save_pretrained` and a 64×64
image-processor configuration, then loaded through `hf:FOLDER`, converted and verified
(relative error against the original transformers model at the canonical size; time: load,
convert and verify).

| class | result | relative error; geometry; time; modules kept whole, or the reason |
|---|---|---|
{chr(10).join(rows)}

Class names, mean, std, the canonical size and the resampling come from the checkpoint
(`config.id2label`, the image-processor configuration). transformers decorates its models'
forwards (`can_return_tuple`), which torch.fx cannot trace through: fc2conv traces the
undecorated forward with the image alone. Modules whose Python reads the input's size (the
MobileNets' TensorFlow-style "same" padding, input checks in embeddings) are kept whole, like
layers, and compute that padding at every size. Swin and Swin V2 average their last token
sequence before the classifier: fc2conv reads that sequence as the map it is (transformers' own
`reshaped_hidden_states`, checked equal to the original at load), so each cell is the
classifier's head on a window of the token grid; their shifted-window encoders stay whole. ViT
and DeiT classify one token and are refused.

torch.onnx (2.14) does not export transformers' Swin with dynamic sizes: Swin fails in its
decomposition step, and Swin V2's export fixes its window padding at the example size, which the
export's own onnxruntime checks at other sizes catch ("the exported model fails in onnxruntime on
a 165×101 image"), so no file is written. Both run converted in PyTorch (`fc2conv.convert`,
`fc2conv.heatmap`); timm's Swin (`timm:swin_tiny_patch4_window7_224`) exports.
"""
    (ROOT / "docs" / "hf.md").write_text(text)
    print("wrote docs/hf.md")


if __name__ == "__main__":
    main()
