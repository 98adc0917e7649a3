"""What every model source returns: the model, its canonical size and its metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class LoadedModel:
    """A classifier ready to convert. ``metadata`` holds what the exported file carries for
    heatmaps and detection: ``classes``, ``mean``, ``std`` and source-specific keys."""

    name: str
    model: Any  # torch.nn.Module (not imported here: listing models needs no PyTorch)
    input_size: tuple[int, int] | None  #: None where the source does not know it (your own code)
    weights: str
    metadata: dict[str, Any] = field(default_factory=dict)
    #: channels of the input images, where the source says (else read from the first layer)
    input_channels: int | None = None
