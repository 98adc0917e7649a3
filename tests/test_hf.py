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

CONVERT = [name for name in classes() if name not in ("ViT", "DeiT")]
#: refused, with the reason the plan gives
REFUSED = {"ViT": "one token of a sequence", "DeiT": "one token of a sequence"}
#: heads that average a token sequence, read as a map
TOKEN_GRIDS = [name for name in ("Swin", "Swinv2") if name in classes()]


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


@pytest.mark.parametrize("name", TOKEN_GRIDS)
def test_swin_heads_read_their_token_sequence_as_a_map(name, tmp_path):
    """Swin's pooler averages its last token sequence: converted through that sequence's map,
    the result equals the original transformers model (not only the map-reading stand-in)."""
    import transformers

    folder = save_checkpoint(name, tmp_path / name)
    prepared = fc2conv.prepare(f"hf:{folder}")
    assert "kept whole" in str(prepared.converted.plan)
    original = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = original(pixel_values=x).logits
        got = prepared.converted(x).flatten(1)
    assert want.abs().max() > 0.1  # logits of order one, so a relative error means something
    assert float((got - want).abs().max() / want.abs().max()) < RTOL
    # one cell per window of the token grid (its stride: 4-pixel patches merged once)
    with torch.no_grad():
        maps = prepared.converted(torch.randn(1, 3, SIZE + 64, SIZE + 32))
    assert maps.shape[2:] == (64 // 8 + 1, 32 // 8 + 1)


@pytest.mark.parametrize("name", [n for n in REFUSED if n in classes()])
def test_token_heads_are_refused_with_the_reason(name, tmp_path):
    folder = save_checkpoint(name, tmp_path / name)
    with pytest.raises(fc2conv.UnsupportedModelError, match=REFUSED[name]):
        fc2conv.prepare(f"hf:{folder}")


def _export(folder, out):
    """``fc2conv hf:FOLDER --out OUT --quiet`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "fc2conv", f"hf:{folder}", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
    )


def test_command_line_export_of_a_checkpoint_folder(tmp_path):
    folder = save_checkpoint("ConvNext", tmp_path / "convnext")
    out = tmp_path / "convnext.onnx"
    done = _export(folder, out)
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


@pytest.mark.skipif("Swinv2" not in classes(), reason="this transformers has no Swin V2")
def test_an_export_that_fails_in_onnxruntime_is_one_line_and_no_file(tmp_path):
    """torch.onnx fixes Swin V2's window padding at the example size: the export's own checks
    at other sizes catch it, in one line, and nothing is written."""
    folder = save_checkpoint("Swinv2", tmp_path / "swinv2")
    out = tmp_path / "swinv2.onnx"
    done = _export(folder, out)
    assert done.returncode == 1
    assert "fails in onnxruntime on a" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists() and list(tmp_path.glob("*.onnx*")) == []
