"""Where a model's preprocessing comes from, and that fc2conv says so where nothing tells it:
``fc2conv.convert`` of a torchvision or timm model carries that library's mean and std; an ONNX
classifier without --mean/--std (or --imagenet) is converted with a note; running a file that
records none prints one."""

from __future__ import annotations

import onnx
import pytest
import torch
import torchvision
from click.testing import CliRunner
from onnx_graphs import HEADS, small_classifier

import fc2conv
from fc2conv.cli import main
from fc2conv.export.onnx_file import UNKNOWN_PREPROCESSING, read_metadata
from fc2conv.sources import IMAGENET_MEAN, IMAGENET_STD


def test_convert_of_a_torchvision_model_carries_imagenets_preprocessing() -> None:
    model = torchvision.models.resnet18(weights=None, num_classes=4).eval()
    converted = fc2conv.convert(model, (64, 64), inplace=True)
    assert converted.metadata["mean"] == IMAGENET_MEAN
    assert converted.metadata["std"] == IMAGENET_STD


def test_convert_of_a_timm_model_carries_its_pretrained_cfg() -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet18", num_classes=4, pretrained_cfg_overlay={
        "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)
    }).eval()  # fmt: skip
    converted = fc2conv.convert(model, (64, 64), inplace=True)
    assert converted.metadata["mean"] == [0.5] * 3 and converted.metadata["std"] == [0.25] * 3


def test_a_model_of_unknown_origin_gets_no_invented_preprocessing() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 14 * 14, 2),
    )
    assert "mean" not in fc2conv.convert(model, (16, 16)).metadata


@pytest.fixture()
def plain_onnx(tmp_path):
    path = tmp_path / "plain.onnx"
    onnx.save(small_classifier(next(iter(HEADS))), str(path))
    return path


def test_an_onnx_classifier_without_mean_and_std_is_converted_with_the_note(
    plain_onnx, tmp_path
) -> None:
    result = fc2conv.convert_onnx(plain_onnx, tmp_path / "a.onnx")
    assert UNKNOWN_PREPROCESSING in result.notes and UNKNOWN_PREPROCESSING in str(result)
    given = fc2conv.convert_onnx(plain_onnx, tmp_path / "b.onnx", mean=[0.5] * 3, std=[0.5] * 3)
    assert UNKNOWN_PREPROCESSING not in given.notes


def test_imagenet_flag_and_the_run_note(plain_onnx, tmp_path, shapes_onnx) -> None:
    out = tmp_path / "in.onnx"
    done = CliRunner().invoke(main, [str(plain_onnx), "--out", str(out), "--imagenet", "--quiet"])
    assert done.exit_code == 0, done.output
    meta = read_metadata(out)
    assert meta["mean"] == IMAGENET_MEAN and meta["std"] == IMAGENET_STD
    refused = CliRunner().invoke(
        main, ["resnet18", "--imagenet", "--out", str(tmp_path / "r.onnx")]
    )
    assert refused.exit_code == 1 and "a model name brings its own preprocessing" in refused.output
    plain = tmp_path / "plain_fcn.onnx"
    assert (
        CliRunner().invoke(main, [str(plain_onnx), "--out", str(plain), "--quiet"]).exit_code == 0
    )
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (48, 40), (10, 200, 30)).save(image)
    ran = CliRunner().invoke(
        main, ["detect", str(plain), str(image), "--out", str(tmp_path / "d.png")]
    )
    assert ran.exit_code == 0, ran.output
    assert "records no mean and std" in ran.output
    ran = CliRunner().invoke(
        main, ["detect", str(out), str(image), "--out", str(tmp_path / "e.png")]
    )
    assert "records no mean and std" not in ran.output
