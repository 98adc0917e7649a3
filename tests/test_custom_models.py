"""Custom classifiers: plain MLPs, gates off the classifier path, tuple and dict outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from classifiers import FaceStage, Flattening, GatedNet, PaddingFree
from helpers import RTOL, convert_and_verify, reinit, relative_error
from torch import nn
from windows import assert_cells_are_windows

import fc2conv


def test_plain_mlp_runs_at_every_pixel() -> None:
    """The seed case: Linear 128→64→32→10 on N×128 becomes 1×1 convs on N×128×H×W."""
    mlp = reinit(
        nn.Sequential(
            nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)
        )
    )
    converted, _ = convert_and_verify(mlp)
    assert converted.geometry.stride == (1, 1) and converted.geometry.min_size == (1, 1)
    features = torch.randn(2, 128, 5, 7)
    maps = converted(features)
    assert maps.shape == (2, 10, 5, 7)
    expected = mlp(features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert relative_error(expected, maps) < RTOL


def test_gates_and_channels_last_linears_stay_exact() -> None:
    model = reinit(GatedNet())
    converted, _ = convert_and_verify(model, (32, 32))
    plan = converted.plan
    left_alone = dict(plan.left_alone)
    assert (
        "gate.fc1" in left_alone
        and "gate whose pooling is not the classifier's" in left_alone["gate.fc1"]
    )
    assert "block.up" in left_alone
    assert [s.layer for s in plan.steps if s.rule.name == "linear"] == ["fc"]
    assert converted(torch.randn(2, 3, 50, 40)).shape[-2:] == converted.output_size(50, 40)


@pytest.mark.parametrize("outputs", ["tuple", "dict"])
def test_tuple_and_dict_outputs(outputs: str) -> None:
    model = reinit(GatedNet(outputs))
    converted, _ = convert_and_verify(model, (32, 32))
    result = converted(torch.randn(2, 3, 48, 48))
    first = result[0] if outputs == "tuple" else result["logits"]
    assert first.shape == (2, 5, *converted.output_size(48, 48))


class TokenClassifier(nn.Module):
    """A ViT-like model: the head reads a class token, not a map."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 8, stride=8)
        self.mix = nn.Linear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        return self.head(self.mix(tokens)[:, 0])


def test_token_classifier_is_refused_with_the_layer_and_reason() -> None:
    with pytest.raises(fc2conv.UnsupportedModelError) as info:
        fc2conv.convert(TokenClassifier(), (32, 32), name="tokens")
    message = str(info.value)
    assert message.startswith("tokens: cannot convert exactly")
    assert "head: its input is one token of a sequence" in message
    assert info.value.reasons[0][0] == "head"


class AlreadyConvolutional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_already_fully_convolutional_model_is_returned_with_a_note() -> None:
    model = reinit(AlreadyConvolutional())
    converted = fc2conv.convert(model, (16, 16))
    assert "already fully convolutional" in str(converted.plan)
    image = torch.randn(2, 3, 20, 20)
    assert torch.equal(converted(image), model(image))


def test_input_smaller_than_a_window_names_both_sizes() -> None:
    converted = fc2conv.convert(GatedNet(), (32, 32), name="gated")
    minimum = converted.geometry.min_size
    with pytest.raises(fc2conv.InputSizeError) as info:
        converted(torch.randn(2, 3, minimum[0] - 1, 40))
    assert f"input {minimum[0] - 1}x40 is smaller than the {minimum[0]}x{minimum[1]}" in str(
        info.value
    )


def test_unknown_mode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        fc2conv.convert(GatedNet(), (32, 32), mode="sliding")


def test_verify_detects_a_changed_weight() -> None:
    model = reinit(GatedNet())
    converted = fc2conv.convert(model, (32, 32))
    with torch.no_grad():
        converted.graph_module.get_submodule("fc").weight[0, 0] += 0.5
    with pytest.raises(fc2conv.EquivalenceError, match="relative error"):
        fc2conv.verify(model, converted)


def test_verify_warns_when_outputs_do_not_depend_on_the_input() -> None:
    model = reinit(GatedNet())
    assert not fc2conv.verify(model, fc2conv.convert(model, (32, 32))).degenerate
    with torch.no_grad():
        model.fc.weight.zero_()  # logits = bias, whatever the image
    report = fc2conv.verify(model, fc2conv.convert(model, (32, 32)))
    assert report.degenerate and "outputs hardly depend on the input" in str(report)


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if x.sum() > 0:  # depends on the data: torch.fx cannot trace it
            x = -x
        return self.fc(x.mean((2, 3)))


def test_a_wrong_input_size_is_one_error_and_nothing_logged(capfd) -> None:
    with pytest.raises(fc2conv.TraceError, match="does not run on a 3x12x12 input"):
        fc2conv.convert(Flattening("torch.flatten"), (12, 12))  # its Linear wants 10x10
    assert capfd.readouterr().err == ""


def test_untraceable_forward_is_a_trace_error_with_a_hint() -> None:
    with pytest.raises(fc2conv.TraceError) as info:
        fc2conv.convert(DataDependent(), (16, 16), name="branchy")
    message = str(info.value)
    assert message.startswith("branchy: torch.fx cannot trace the forward")
    assert "data-dependent Python control flow" in message
    assert isinstance(info.value.__cause__, Exception)


class ScaledFirstChannel(nn.Module):
    """A trunk block torch.fx cannot trace: it assigns into a tensor (as Swin's mask code does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        out[:, :1] = out[:, :1] * 2
        return out


class WithUntraceableParts(nn.Module):
    def __init__(self, head_assigns: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.block = ScaledFirstChannel()
        self.head_assigns = head_assigns
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:  # an optional input, absent when the model classifies images
            x = x * mask
        x = self.block(F.relu(self.conv(x))).flatten(1)
        if self.head_assigns:
            x[:, 0] = 0  # in the head: no per-window form can be traced
        return self.fc(x)


def test_an_untraceable_trunk_block_is_kept_whole_and_the_model_converts() -> None:
    model = reinit(WithUntraceableParts())
    converted, report = convert_and_verify(model, (8, 8))
    assert report.relative_error < RTOL
    calls = {n.target for n in converted.graph_module.graph.nodes if n.op == "call_module"}
    assert "block" in calls  # a leaf: its forward runs as written
    assert "torch.fx cannot trace into block: kept whole" in " ".join(converted.plan.notes)
    image = torch.randn(2, 3, 11, 13)
    with torch.no_grad():
        maps = converted(image)
    assert maps.shape == (2, 3, 4, 6)
    assert_cells_are_windows(model, image, maps, (8, 8), (1, 1))


class StemKeptWhole(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x[:, :1] = x[:, :1] * 2  # untraceable: the whole stem is kept, its conv inside it
        return x


def test_input_channels_are_read_inside_a_module_kept_whole() -> None:
    model = reinit(nn.Sequential(StemKeptWhole(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)))
    converted, _ = convert_and_verify(model, (8, 8))
    assert converted.input_channels == 2
    assert "cannot trace into 0: kept whole" in " ".join(converted.plan.notes)


def test_an_untraceable_head_names_the_failing_module() -> None:
    with pytest.raises(fc2conv.TraceError) as info:
        fc2conv.convert(reinit(WithUntraceableParts(head_assigns=True)), (8, 8), name="m")
    assert str(info.value).startswith("m: torch.fx cannot trace the forward")
    assert "does not support item assignment" in str(info.value)


class WholeBlocks(nn.Module):
    """Windowed attention's partition: a map of 8x8 blocks at stride 32, so the image must be
    whole 256x256 blocks (as halo attention asserts)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] % 256 or x.shape[3] % 256:
            raise ValueError("the image does not divide into 256x256 blocks")
        return x


def test_a_model_taking_multiples_of_256_gets_that_size_step() -> None:
    model = reinit(
        nn.Sequential(
            WholeBlocks(),
            nn.Conv2d(3, 4, 32, stride=32),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        )
    )
    converted, _ = convert_and_verify(model, (256, 256))
    assert converted.geometry.size_step == (256, 256)
    assert converted.output_size(512, 768) == (9, 17)
    assert converted(torch.randn(1, 3, 512, 768)).shape == (1, 3, 9, 17)
    assert converted.geometry.usable_size(700, 600) == (512, 512)


class SpaceToDepthStem(nn.Module):
    """TResNet's stem: 4x4 pixel blocks become channels, so the first convolution reads 48."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(48, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(x, 4)
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))


def test_input_channels_guessed_wrongly_says_how_to_pass_them() -> None:
    with pytest.raises(fc2conv.TraceError) as info:
        fc2conv.convert(SpaceToDepthStem(), (32, 32), name="s2d")
    message = str(info.value)
    assert message.startswith("s2d: the model does not run on a 48x32x32 input")
    assert "The 48 input channels were read from its first layer, conv" in message
    assert "pass --input-channels" in message
    converted, _ = convert_and_verify(reinit(SpaceToDepthStem()), (32, 32), input_channels=3)
    assert converted.input_channels == 3
    assert converted(torch.randn(2, 3, 64, 48)).shape == (2, 5, 9, 5)


def test_face_detector_stage_converts_exactly() -> None:
    model = reinit(FaceStage())
    converted, _ = convert_and_verify(model, (24, 24))
    plan = str(converted.plan)
    assert "weight columns reordered to NCHW" in plan
    boxes, faces = converted(torch.randn(2, 3, 60, 50))
    rows, cols = converted.output_size(60, 50)
    assert boxes.shape == (2, 4, rows, cols) and faces.shape == (2, 2, rows, cols)
    assert torch.allclose(faces.sum(1), torch.ones(2, rows, cols), atol=1e-5)


def test_face_stage_cells_are_their_windows_through_its_permuted_flatten() -> None:
    """At 24x24 the first pool's last windows are cut at the border; inside a larger image they
    would be whole (each cell reading 25x25 pixels), but the maps also run as the crop's border,
    through the stage's NWHC permute and back, so each cell is the stage on its 24x24 window."""
    model = reinit(FaceStage()).eval()
    converted = fc2conv.convert(model, (24, 24))
    assert any("every cell is the classifier on its window" in n for n in converted.plan.notes)
    assert converted.geometry.min_size == (24, 24)
    image = torch.randn(2, 3, 47, 38)
    with torch.no_grad():
        boxes, faces = converted(image)
    assert faces.shape[2:] == (6, 4)  # the last cell's window ends inside the image
    assert_cells_are_windows(lambda crop: model(crop)[0], image, boxes, (24, 24), (4, 4))
    assert_cells_are_windows(lambda crop: model(crop)[1], image, faces, (24, 24), (4, 4))


def test_padding_free_cells_read_exactly_their_window() -> None:
    from fc2conv.conversion.receptive import receptive_field

    converted = fc2conv.convert(reinit(PaddingFree()), (16, 12))
    assert receptive_field(converted) == ((0, 0), (16, 12))
    assert not converted.plan.notes
