"""timm's models: a few small ones of different families convert exactly; timm as a source.

``python benchmarks/timm_zoo.py`` sweeps one small model per timm family into docs/timm.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import RTOL, assert_order_one, reinit, relative_error
from timm_models import check_timm_model, smallest_model

import fc2conv
from fc2conv.sources import load_model

timm = pytest.importorskip("timm")

SMALL = {
    "resnet18": "plain convolutional trunk, global pool",
    "tf_mobilenetv3_small_minimal_100": "TensorFlow 'same' padding computed in forward",
    "convnext_atto": "LayerNorm2d and a pooled channels-last head",
    "mambaout_femto": "channels-last trunk, pooled by mean over (1, 2)",
    "nf_resnet26": "weights standardised in forward; channels read through them",
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_timm_models_convert_exactly(name: str) -> None:
    loaded = load_model(f"timm:{name}", "none")
    model = reinit(loaded.model)
    converted = fc2conv.convert(
        model, loaded.input_size, name=name, inplace=True, input_channels=loaded.input_channels
    )
    report = fc2conv.verify(model, converted, rtol=RTOL)
    assert_order_one(report)
    height, width = loaded.input_size
    size = converted.geometry.usable_size(height + 37, width + 101)
    with torch.no_grad():
        maps = converted(torch.randn(1, 3, *size))
    assert maps.shape[-2:] == converted.output_size(*size)


def test_swin_converts_with_its_shifted_window_blocks_kept_whole() -> None:
    """Swin's shifted-window blocks build their attention mask by assigning into a tensor, which
    torch.fx cannot trace: those blocks stay whole, and the channels-last head converts."""
    model = timm.create_model(
        "swin_tiny_patch4_window7_224",
        embed_dim=24,
        depths=(2, 2, 2, 2),
        num_heads=(1, 1, 1, 1),
        strict_img_size=False,
    )
    model = reinit(model)
    converted = fc2conv.convert(model, (224, 224), name="swin", inplace=True)
    assert_order_one(fc2conv.verify(model, converted, rtol=RTOL))
    modules = dict(converted.graph_module.named_modules())
    whole = [
        node.target
        for node in converted.graph_module.graph.nodes
        if node.op == "call_module" and list(modules[node.target].children())
    ]
    assert whole == ["layers.0.blocks.1", "layers.1.blocks.1", "layers.2.blocks.1"]
    with torch.no_grad():
        maps = converted(torch.randn(1, 3, 260, 324))
    assert maps.shape[-2:] == converted.output_size(260, 324) == (3, 5)


def test_a_size_locked_swin_is_refused_saying_how_to_build_it() -> None:
    """timm's default ``strict_img_size=True`` makes Swin run at its own size only: the
    refusal says that first, with the two ways out."""
    model = timm.create_model(
        "swin_tiny_patch4_window7_224", embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)
    )
    with pytest.raises(fc2conv.UnsupportedModelError) as info:
        fc2conv.convert(model, (224, 224), name="swin", inplace=True)
    layer, why = info.value.reasons[0]
    assert layer == "input" and "runs at 224x224 only" in why
    assert "strict_img_size=False" in why and "timm:NAME" in why


def test_input_channels_come_from_pretrained_cfg_not_a_space_to_depth_stem() -> None:
    """TResNet's stem turns 3 channels into 48 before its first convolution: the Python API
    reads 3 from the model's pretrained_cfg, as timm:NAME does."""
    model = reinit(timm.create_model("tresnet_m", num_classes=5))
    assert model.body.conv1.conv.in_channels == 48
    converted = fc2conv.convert(model, (224, 224), name="tresnet", inplace=True)
    assert converted.input_channels == 3
    assert_order_one(fc2conv.verify(model, converted, rtol=RTOL))


def test_token_heads_are_refused_naming_the_token_read() -> None:
    with pytest.raises(fc2conv.UnsupportedModelError) as info:
        fc2conv.convert(timm.create_model("vit_tiny_patch16_224"), name="vit", inplace=True)
    assert "head: its input is one token of a sequence" in str(info.value)


def test_weights_file_with_its_own_classes(tmp_path: Path) -> None:
    tuned = reinit(timm.create_model("resnet18", num_classes=7))  # outputs of order one
    torch.save(
        {"model": tuned.state_dict(), "class_to_idx": {f"c{i}": i for i in range(7)}},
        tmp_path / "tuned.pth",
    )
    loaded = load_model("timm:resnet18", str(tmp_path / "tuned.pth"))
    assert loaded.model.num_classes == 7 and loaded.metadata["classes"][3] == "c3"
    assert loaded.metadata["interpolation"] == "bicubic" and loaded.input_channels == 3
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert relative_error(tuned.eval()(images), loaded.model(images)) == 0


def test_pretrained_weights_come_from_the_hugging_face_cache(tmp_path: Path) -> None:
    """timm's DEFAULT weights, offline, from a cache laid out as huggingface_hub lays it out."""
    from safetensors.torch import save_file

    model = timm.create_model("resnet18")
    repository = tmp_path / "hub" / "models--timm--resnet18.a1_in1k"
    commit = "0" * 40
    (repository / "snapshots" / commit).mkdir(parents=True)
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text(commit)
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(repository / "snapshots" / commit / "model.safetensors"))
    out = tmp_path / "r18.onnx"
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "fc2conv", "timm:resnet18", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    metadata = fc2conv.read_metadata(out)
    assert metadata["model"] == "timm:resnet18" and len(metadata["classes"]) == 1000
    assert metadata["mean"] == [0.485, 0.456, 0.406]
    empty = {**env, "HF_HOME": str(tmp_path / "empty")}
    done = subprocess.run(
        [sys.executable, "-m", "fc2conv", "timm:resnet18", "--out", str(tmp_path / "x.onnx")],
        capture_output=True,
        text=True,
        env=empty,
    )
    assert done.returncode == 1
    assert "cannot get timm's pretrained weights" in done.stderr
    assert "timm/resnet18.a1_in1k" in done.stderr and "--weights PATH" in done.stderr


def test_hub_errors_are_quoted_by_their_first_sentence() -> None:
    from fc2conv.sources.timm import _first_sentence

    hub = (
        "An error happened while trying to locate the file on the Hub and we cannot find the "
        "requested files in the local cache. Please check your connection and try again."
    )
    assert _first_sentence(Exception(hub)) == hub.split(". ")[0]
    assert len(_first_sentence(Exception("x" * 500))) == 200


@pytest.mark.timm_zoo
@pytest.mark.parametrize("family", timm.list_modules())
def test_timm_family(family: str) -> None:
    """Converted exactly, or refused with a reason; never a silent mismatch."""
    check_timm_model(smallest_model(family))
