"""Train the bundled classifier from scratch on drawn crops.

    python -m fc2conv.shapes --seed 0 --steps 1200 --out shapes.safetensors

prints the held-out accuracy and how long training took. The shipped weights
(``fc2conv/data/shapes.safetensors``) are replaced only when ``--out`` names them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .net import ShapesNet
from .scenes import draw_crop
from .spec import CLASSES, MEAN, STD

__all__ = ["main", "train"]


def _batch(rng: np.random.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = rng.integers(0, len(CLASSES), count)
    labels[: count // 3] = 0  # backgrounds are varied: give them a larger share
    crops = np.stack([draw_crop(rng, int(label)) for label in labels])
    images = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return (images - mean) / std, torch.from_numpy(labels)


def train(
    seed: int = 0, steps: int = 1200, batch: int = 96, log: Any = print
) -> tuple[ShapesNet, float]:
    """Train ShapesNet from scratch; returns the model and its held-out accuracy."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ShapesNet()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 3e-3, total_steps=steps)
    start = time.perf_counter()
    for step in range(steps):
        model.train()
        images, labels = _batch(rng, batch)
        loss = nn.functional.cross_entropy(model(images), labels, label_smoothing=0.05)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 100 == 0:
            log(f"step {step:5d}  loss {loss.item():.3f}  {time.perf_counter() - start:.0f} s")
    model.eval()
    held_out = np.random.default_rng(seed + 10_000)
    correct = total = 0
    with torch.no_grad():
        for _ in range(10):
            images, labels = _batch(held_out, 200)
            correct += int((model(images).argmax(1) == labels).sum())
            total += len(labels)
    return model, correct / total


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the bundled shapes classifier.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("shapes.safetensors"),
        help="where to write the weights (the shipped ones: fc2conv/data/shapes.safetensors)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    model, accuracy = train(args.seed, args.steps)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out))
    print(
        f"held-out accuracy {accuracy:.3f}; {time.perf_counter() - start:.0f} s; "
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)"
    )
