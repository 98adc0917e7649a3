"""Loading weights: each tensor once (meta skeleton, memory-mapped checkpoint), and torchvision's
own adjustments for its pretrained checkpoints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision
from helpers import hub_checkpoint

from fc2conv.sources import load_model


def test_weights_are_the_checkpoint_tensors_not_copies(tmp_path: Path) -> None:
    original = torchvision.models.resnet18()
    torch.save(original.state_dict(), tmp_path / "r18.pth")
    loaded = load_model("resnet18", str(tmp_path / "r18.pth")).model
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])
    # memory-mapped from the file: the parameters live in a file-backed mapping
    maps = Path("/proc/self/maps").read_text()
    weight = loaded.fc.weight.untyped_storage().data_ptr()
    mapped = [
        line
        for line in maps.splitlines()
        if "r18.pth" in line
        and int(line.split("-")[0], 16) <= weight < int(line.split()[0].split("-")[1], 16)
    ]
    assert mapped, "fc.weight is not memory-mapped from the checkpoint"


def test_half_precision_file_gives_a_float32_model(tmp_path: Path) -> None:
    state = {
        k: v.half() if v.is_floating_point() else v
        for k, v in torchvision.models.resnet18().state_dict().items()
    }
    torch.save(state, tmp_path / "half.pth")
    loaded = load_model("resnet18", str(tmp_path / "half.pth")).model
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}


def test_densenet_checkpoint_with_old_layer_names(tmp_path: Path, monkeypatch) -> None:
    original = torchvision.models.densenet121()
    # as torchvision's own checkpoint: 'norm.1'-style names and no BatchNorm counters
    old = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.")
    state = {
        old.sub(r"\1.\2.", key): value
        for key, value in original.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in state
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    hub_checkpoint(tmp_path, "densenet121", state)
    loaded = load_model("densenet121").model
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize(
    ("name", "heads"), [("googlenet", ("aux1", "aux2")), ("inception_v3", ("AuxLogits",))]
)
def test_pretrained_googlenet_and_inception_as_torchvision_builds_them(
    tmp_path: Path, monkeypatch, name: str, heads: tuple[str, ...]
) -> None:
    with_aux = torchvision.models.get_model(name, aux_logits=True, init_weights=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    hub_checkpoint(tmp_path, name, with_aux.state_dict())
    loaded = load_model(name).model
    assert loaded.transform_input is True and loaded.aux_logits is False
    assert all(getattr(loaded, head) is None for head in heads)
    size = 299 if name == "inception_v3" else 224
    images = torch.randn(1, 3, size, size)
    with_aux.eval().transform_input = True  # what torchvision's pretrained builder sets
    with torch.no_grad():
        assert torch.allclose(loaded(images), with_aux(images), rtol=1e-5, atol=1e-6)


def test_module_versions_in_the_checkpoint_are_kept(tmp_path: Path) -> None:
    # MNASNet reads its version from the state dict's metadata and refuses a dict without it
    original = torchvision.models.mnasnet0_5()
    torch.save(original.state_dict(), tmp_path / "mnasnet.pth")
    loaded = load_model("mnasnet0_5", str(tmp_path / "mnasnet.pth")).model
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize(
    "name",
    ["efficientnet_b0", "regnet_y_400mf", "convnext_tiny", "shufflenet_v2_x0_5", "wide_resnet50_2"],
)
def test_state_dict_files_load_exactly(tmp_path: Path, name: str) -> None:
    original = torchvision.models.get_model(name).eval()
    torch.save(original.state_dict(), tmp_path / "weights.pth")
    loaded = load_model(name, str(tmp_path / "weights.pth")).model
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded(images), original(images))


def test_fine_tuned_checkpoint_gets_its_number_of_classes_and_names(tmp_path: Path) -> None:
    tuned = torchvision.models.resnet18(num_classes=10)
    names = [f"kind {i}" for i in range(10)]
    torch.save({"state_dict": tuned.state_dict(), "classes": names}, tmp_path / "r18_10.pth")
    loaded = load_model("resnet18", str(tmp_path / "r18_10.pth"))
    assert loaded.model.fc.out_features == 10
    assert loaded.metadata["classes"] == names
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded.model(images), tuned.eval()(images))


def test_the_official_checkpoint_file_keeps_its_class_names(tmp_path: Path) -> None:
    file = tmp_path / "resnet18-f37072fd.pth"  # the name torchvision's DEFAULT weights have
    torch.save(torchvision.models.resnet18().state_dict(), file)
    loaded = load_model("resnet18", str(file))
    assert len(loaded.metadata["classes"]) == 1000 and loaded.metadata["classes"][0] == "tench"


def test_class_names_from_a_file_must_match_the_model(tmp_path: Path) -> None:
    import fc2conv
    from fc2conv.pipeline import prepare

    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "r18.pth")
    (tmp_path / "names.txt").write_text("cat\ndog\n\nbird\n")
    prepared = prepare("resnet18", str(tmp_path / "r18.pth"), classes=tmp_path / "names.txt")
    assert prepared.converted.metadata["classes"] == ["cat", "dog", "bird"]
    (tmp_path / "two.txt").write_text("cat\ndog\n")
    with pytest.raises(fc2conv.ModelLoadError, match="2 class names for a model with 3 classes"):
        prepare("resnet18", str(tmp_path / "r18.pth"), classes=tmp_path / "two.txt")
