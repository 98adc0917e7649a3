"""The bundled "shapes" classifier: a small VGG-style CNN for 64×64 crops.

It tells background from five drawn shapes; its head is flatten → Linear → ReLU → Dropout →
Linear, so converting it exercises the flatten-to-convolution rewrite. Its classes and
preprocessing are in :mod:`.spec`; drawing, training and evaluation live beside it.
"""

from __future__ import annotations

import torch
from torch import nn

from .spec import CLASSES

__all__ = ["ShapesNet"]


class ShapesNet(nn.Module):
    """VGG-style: four 3×3 conv stages, three 2×2 max-pools (stride 8), flatten, two Linears."""

    def __init__(self, classes: int = len(CLASSES)) -> None:
        super().__init__()

        def stage(inputs: int, outputs: int) -> list[nn.Module]:
            return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU()]

        self.features = nn.Sequential(
            *stage(3, 16),
            nn.MaxPool2d(2),
            *stage(16, 32),
            nn.MaxPool2d(2),
            *stage(32, 48),
            nn.MaxPool2d(2),
            *stage(48, 48),
        )
        self.classifier = nn.Sequential(
            nn.Linear(48 * 8 * 8, 96), nn.ReLU(), nn.Dropout(0.3), nn.Linear(96, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))
