"""ceil_mode pools made exact at every cell's border (fc2conv.conversion.borders): each cell of a
larger image equals the classifier on its window, and no cell names a window outside the image."""

from __future__ import annotations

import pytest
import torch
from classifiers import StageR
from torch import nn

import fc2conv
from fc2conv.compare import relative_error
from fc2conv.conversion.borders import window_variants


@pytest.mark.parametrize("pool", [nn.MaxPool2d, nn.AvgPool2d])
def test_every_cell_is_the_classifier_on_its_window(pool: type[nn.Module]) -> None:
    torch.manual_seed(0)
    model = StageR(pool).eval()
    converted = fc2conv.convert(model, (24, 24))
    geometry = converted.geometry
    assert geometry.min_size == (24, 24) and geometry.window == (24, 24)
    assert any("every cell is the classifier on its window" in n for n in converted.plan.notes)
    for height, width in [(24, 24), (47, 30), (61, 53)]:
        image = torch.randn(2, 3, height, width)
        with torch.no_grad():
            maps = converted(image)
        rows, cols = maps[0].shape[-2:]
        assert (rows, cols) == ((height - 24) // 4 + 1, (width - 24) // 4 + 1)  # all inside
        for row in range(rows):
            for col in range(cols):
                crop = image[:, :, 4 * row : 4 * row + 24, 4 * col : 4 * col + 24]
                with torch.no_grad():
                    expected = model(crop)
                for want, got in zip(expected, maps, strict=True):
                    assert relative_error(want, got[:, :, row, col]) < 1e-5


def test_the_plan_names_the_partial_pools_until_they_are_made_exact() -> None:
    model = StageR(nn.MaxPool2d).eval()
    # at 24x24, features.2 pools 22 rows into 11 windows, the last of 2 rows; features.5 pools 9
    # rows into 4 whole windows, and reads nothing beyond them
    assert fc2conv.plan(model, (24, 24)).reads_beyond == ["features.2"]
    converted = fc2conv.convert(model, (24, 24))
    assert converted.plan.reads_beyond == []
    assert not any("pad their input or pool with ceil_mode" in n for n in converted.plan.notes)


def test_the_variants_share_the_weights() -> None:
    """Each kernel piece is a slice of the layer's own weight, taken when the model runs: no
    copies, no masks."""
    model = StageR(nn.AvgPool2d).eval()
    converted = fc2conv.convert(model, (24, 24), inplace=True)
    module = converted.graph_module
    originals = {p.data_ptr() for p in model.parameters()}
    assert all(p.data_ptr() in originals for p in module.parameters())
    assert not list(module.buffers())


def test_a_model_without_partial_windows_is_left_as_it_is() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
                          nn.Linear(4 * 11 * 11, 3)).eval()  # fmt: skip
    converted = fc2conv.convert(model, (24, 24))  # 22 pools into 11 whole windows
    targets = [node.target for node in converted.graph_module.graph.nodes]
    assert window_variants not in targets
    assert not converted.plan.notes  # none on borders, and its cells read only their window
