"""Hugging Face checkpoints (``hf:FOLDER``): every CNN-style class of the installed transformers
converts exactly from a saved folder, with its class names, mean, std and size; token-head models
are refused with the reason; a repository that is not in the cache offline is one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from helpers import RTOL, assert_order_one
from hf_models import LABELS, SIZE, classes, save_checkpoint

import fc2conv
from fc2conv.export.onnx_file import read_metadata

pytest.importorskip("transformers")

CONVERT = [name for name in classes() if name not in ("ViT", "DeiT", "Swin", "Swinv2")]
#: refused, with the reason the plan gives
REFUSED = {
    "ViT": "one token of a sequence",
    "DeiT": "one token of a sequence",
    "Swin": "not from a flattened or pooled convolutional feature map",
    "Swinv2": "not from a flattened or pooled convolutional feature map",
}


@pytest.mark.parametrize("name", CONVERT)
def test_cnn_classes_convert_exactly_with_their_metadata(name, tmp_path):
    folder = save_checkpoint(name, tmp_path / name)
    prepared = fc2conv.prepare(f"hf:{folder}")
    assert prepared.loaded.input_size == (SIZE, SIZE)
    meta = prepared.converted.metadata
    assert meta["classes"] == list(LABELS.values())
    assert meta["mean"] == [0.5] * 3 and meta["std"] == [0.5] * 3
    report = fc2conv.verify(prepared.loaded.model, prepared.converted, rtol=RTOL)
    assert_order_one(report)
    with torch.no_grad():
        maps = prepared.converted(torch.randn(1, 3, SIZE + 37, SIZE + 64))
    maps = maps["logits"] if isinstance(maps, dict) else maps
    assert maps.shape[:2] == (1, len(LABELS))
    assert maps.shape[2:] == prepared.converted.output_size(SIZE + 37, SIZE + 64)


@pytest.mark.parametrize("name", [n for n in REFUSED if n in classes()])
def test_token_heads_are_refused_with_the_reason(name, tmp_path):
    folder = save_checkpoint(name, tmp_path / name)
    with pytest.raises(fc2conv.UnsupportedModelError, match=REFUSED[name]):
        fc2conv.prepare(f"hf:{folder}")


def test_command_line_export_of_a_checkpoint_folder(tmp_path):
    folder = save_checkpoint("ConvNext", tmp_path / "convnext")
    out = tmp_path / "convnext.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "fc2conv", f"hf:{folder}", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    meta = read_metadata(out)
    assert meta["classes"] == list(LABELS.values()) and meta["mean"] == [0.5] * 3
    assert tuple(meta["geometry"].canonical_size) == (SIZE, SIZE)


def test_what_cannot_be_loaded_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(fc2conv.ModelLoadError, match="put the repository nobody/nothing into"):
        fc2conv.prepare("hf:nobody/nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(fc2conv.ModelLoadError, match=r"the folder needs config\.json"):
        fc2conv.prepare(f"hf:{tmp_path / 'empty'}")
