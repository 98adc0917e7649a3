"""The result of a conversion: a module that takes images of any size and returns class maps."""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn

from ..errors import InputSizeError
from ..geometry import Geometry
from .outputs import OutputInfo
from .planner import Plan

__all__ = ["FullyConvolutionalModel"]


class FullyConvolutionalModel(nn.Module):
    """A converted classifier: takes N×C×H×W images of any size ≥ ``geometry.min_size``.

    At the canonical size its output equals the original logits (``mode="window"``: one cell;
    ``mode="cam"``: a map whose spatial mean is the logits); larger inputs give class maps.

    ``metadata`` is written into the exported ONNX file and read by heatmaps and detection:
    ``classes`` (a name per output channel), ``mean`` and ``std`` (per input channel, for images
    in [0, 1]), and any other JSON-serialisable key (``background``, ``box_fraction``,
    ``weights``). :func:`fc2conv.pipeline.prepare` fills it from the model's source.
    """

    def __init__(
        self,
        graph_module: fx.GraphModule,
        geometry: Geometry,
        plan: Plan,
        input_channels: int,
        vector_input: bool,
        outputs: list[OutputInfo] | None = None,
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.geometry = geometry
        self.plan = plan
        self.name = plan.name
        self.mode = plan.mode
        self.input_channels = input_channels
        self.vector_input = vector_input
        #: what each output holds (name, channels, class map or not, what it ends in)
        self.outputs = outputs or []
        self.metadata: dict[str, Any] = {}

    def forward(self, images: torch.Tensor) -> Any:
        if images.dim() != 4 or images.shape[1] != self.input_channels:
            raise InputSizeError(
                f"{self.name}: expected images of shape N x {self.input_channels} x H x W, "
                f"got {tuple(images.shape)}"
            )
        self.geometry.check_input(int(images.shape[2]), int(images.shape[3]), self.name)
        return self.graph_module(images)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self.geometry.output_size(height, width, self.name)
