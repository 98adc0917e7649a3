"""A finer output stride (à trous): every f-th cell equals the map at the model's own stride,
the cells in between are the windows half-way, and what cannot be refined exactly is refused
with the layer in the way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from helpers import assert_equals_original, reinit
from torch import nn
from windows import assert_cells_are_windows

import fc2conv
from fc2conv.compare import relative_error


class PaddingFree(nn.Module):
    """A classifier whose every cell equals the classifier on its crop (no padding)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(8, 8, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(8 * 2 * 2, 16), nn.ReLU(), nn.Linear(16, 5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _maps(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images)


def test_every_second_cell_is_the_coarse_map_and_the_others_are_the_windows_half_way() -> None:
    original = reinit(PaddingFree())  # 36x36 -> 2x2 features, stride 8
    coarse = fc2conv.convert(original, (36, 36))
    fine = fc2conv.convert(original, (36, 36), stride=4)
    assert coarse.geometry.stride == (8, 8) and fine.geometry.stride == (4, 4)
    assert "stride refined from 8 to 4" in fine.plan.notes[-1]
    images = torch.randn(2, 3, 36 + 8 * 3 + 5, 36 + 8 * 2 + 3)
    every, all_cells = _maps(coarse, images), _maps(fine, images)
    assert all_cells.shape[-2:] == fine.output_size(*images.shape[-2:])
    assert relative_error(every, all_cells[..., ::2, ::2]) <= 1e-6
    half_way = [(1, 0), (0, 3), (3, 1)]  # cells between the coarse ones
    assert_cells_are_windows(original, images, all_cells, (36, 36), (4, 4), half_way, rtol=1e-6)


@pytest.mark.parametrize(("name", "stride"), [("resnet18", 16), ("resnet18", 8), ("vgg11", 16)])
def test_torchvision_models_refine_exactly(name: str, stride: int) -> None:
    torch.manual_seed(0)
    model = reinit(getattr(torchvision.models, name)()).eval()
    coarse = fc2conv.convert(model, (224, 224))
    fine = fc2conv.convert(model, (224, 224), stride=stride)
    assert fine.geometry.stride == (stride, stride)
    report = fc2conv.verify(model, fine)  # the first cell at the canonical size
    assert report.output_scale > 0.1
    assert_equals_original(model, fine)  # and so it is, computed here
    factor = 32 // stride
    for height, width in [(288, 256), (261, 325)]:
        images = torch.randn(2, 3, height, width)
        every, all_cells = _maps(coarse, images), _maps(fine, images)
        assert all_cells.shape[-2:] == fine.output_size(height, width)
        assert relative_error(every, all_cells[..., ::factor, ::factor]) <= 1e-5


def test_what_cannot_be_refined_is_refused_with_the_layer() -> None:
    model = torchvision.models.mobilenet_v3_small().eval()
    with pytest.raises(fc2conv.UnsupportedModelError) as info:
        fc2conv.convert(model, (224, 224), stride=16)
    assert "features_9_block_2_avgpool: reduces a refined map over its positions" in str(info.value)
    with pytest.raises(fc2conv.UnsupportedModelError, match="stride 12x12 does not divide"):
        fc2conv.convert(PaddingFree(), (36, 36), stride=12)
    same = fc2conv.convert(PaddingFree(), (36, 36), stride=8)
    assert same.geometry.stride == (8, 8) and not same.plan.notes


def test_a_refined_model_exports_with_its_geometry(tmp_path: Path) -> None:
    torch.manual_seed(0)
    fine = fc2conv.convert(PaddingFree().eval(), (36, 36), stride=2)
    path = tmp_path / "fine.onnx"
    fc2conv.export_onnx(fine, path)  # checked in onnxruntime at three sizes
    assert fc2conv.read_metadata(path)["geometry"].stride == (2, 2)
    image = np.random.default_rng(0).random((70, 90, 3)).astype(np.float32)
    (level,) = fc2conv.heatmap(path, image, scales=(1.0,), probabilities=False).levels
    assert level.scores.shape == (5, *fine.output_size(70, 90))
