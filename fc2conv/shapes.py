"""The bundled "shapes" classifier: a small VGG-style CNN that fc2conv trains itself.

It classifies 64×64 crops as background or one of five drawn shapes, and exists so that heatmaps
and detections can be shown and measured offline. Its head is flatten → Linear → ReLU → Dropout →
Linear, so converting it exercises the k×k rule. Images are drawn procedurally with Pillow:
random size, colour, rotation, clutter and noise. Train it again with::

    python -m fc2conv.shapes --seed 0 --steps 1200 --out fc2conv/data/shapes.safetensors
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch import nn

__all__ = [
    "CLASSES",
    "INPUT_SIZE",
    "Scene",
    "ShapesNet",
    "draw_crop",
    "draw_scene",
    "load_shapes",
    "train",
]

CLASSES = ["background", "circle", "square", "triangle", "star", "cross"]
INPUT_SIZE = 64
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]
#: a shape's box is this fraction of the window the classifier saw it in (its longer side)
BOX_FRACTION = 0.68
WEIGHTS = Path(__file__).with_name("data") / "shapes.safetensors"


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


# --- drawing ---------------------------------------------------------------------------------


def _outline(kind: str, angle: float) -> list[tuple[float, float]]:
    """Unit outline of a shape, rotated by ``angle``."""
    if kind == "circle":
        points = [
            (math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * math.pi, 48, endpoint=False)
        ]
    elif kind == "square":
        points = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif kind == "triangle":
        points = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif kind == "star":
        points = [
            (
                (1.0 if i % 2 == 0 else 0.45) * math.cos(-math.pi / 2 + i * math.pi / 5),
                (1.0 if i % 2 == 0 else 0.45) * math.sin(-math.pi / 2 + i * math.pi / 5),
            )
            for i in range(10)
        ]
    elif kind == "cross":
        w = 0.33
        points = [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ]
    else:
        raise ValueError(kind)
    cos, sin = math.cos(angle), math.sin(angle)
    return [(x * cos - y * sin, x * sin + y * cos) for x, y in points]


def _colour(rng: np.random.Generator, avoid: tuple[int, ...] | None = None) -> tuple[int, ...]:
    while True:
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if avoid is None or sum(abs(a - b) for a, b in zip(colour, avoid, strict=True)) > 150:
            return colour


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    kind: str,
    cx: float,
    cy: float,
    extent: float,
    angle: float,
    colour: tuple[int, ...],
) -> tuple[float, float, float, float]:
    """Draw a shape whose bounding box is centred at (cx, cy) with longer side ``extent``;
    return that box (x1, y1, x2, y2)."""
    points = _outline(kind, angle)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    scale = extent / max(max(xs) - min(xs), max(ys) - min(ys))
    mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    placed = [(cx + scale * (x - mx), cy + scale * (y - my)) for x, y in points]
    draw.polygon(placed, fill=colour)
    px, py = [p[0] for p in placed], [p[1] for p in placed]
    return min(px), min(py), max(px), max(py)


def _background(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, tuple]:
    base = _colour(rng)
    image = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 4 + width * height // 2000))):  # clutter: lines, specks
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if rng.random() < 0.5:
            length, angle = rng.uniform(5, 30), rng.uniform(0, math.pi)
            draw.line(
                [x, y, x + length * math.cos(angle), y + length * math.sin(angle)],
                fill=_colour(rng),
                width=int(rng.integers(1, 3)),
            )
        else:
            r = rng.uniform(1, 4)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=_colour(rng))
    return image, base


def _finish(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    noise = rng.normal(0, rng.uniform(0, 12), (image.height, image.width, 3))
    array = np.asarray(image, dtype=np.float64) + noise
    return np.clip(array, 0, 255).astype(np.uint8)


def draw_crop(rng: np.random.Generator, label: int) -> np.ndarray:
    """One 64×64 training crop of class ``label`` (0 is background), as H×W×3 uint8.

    A positive's bounding box is centred (±3 px) and its longer side is 50–85% of the crop;
    backgrounds hold clutter, shapes far off centre, and shapes too small or too large, so the
    class map peaks where a shape fills a window.
    """
    size = INPUT_SIZE
    image, base = _background(rng, size, size)
    draw = ImageDraw.Draw(image)
    centre = size / 2
    if label:
        kind = CLASSES[label]
        side = rng.uniform(0.5, 0.85) * size
        cx, cy = centre + rng.uniform(-3, 3), centre + rng.uniform(-3, 3)
        _draw_shape(draw, kind, cx, cy, side, rng.uniform(0, 2 * math.pi), _colour(rng, base))
    else:
        for _ in range(int(rng.integers(0, 3))):
            kind = CLASSES[int(rng.integers(1, len(CLASSES)))]
            case = rng.random()
            if case < 0.5:  # off centre
                side = rng.uniform(0.4, 0.9) * size
                offset = rng.uniform(0.25, 0.7, 2) * size * rng.choice([-1, 1], 2)
                cx, cy = centre + offset[0], centre + offset[1]
            elif case < 0.75:  # too small
                side = rng.uniform(0.12, 0.33) * size
                cx, cy = rng.uniform(0, size, 2)
            else:  # too large: the window sees a part of a shape
                side = rng.uniform(1.2, 2.5) * size
                cx, cy = centre + rng.uniform(-0.5, 0.5, 2) * side
            _draw_shape(draw, kind, cx, cy, side, rng.uniform(0, 2 * math.pi), _colour(rng, base))
    return _finish(image, rng)


@dataclass
class Scene:
    image: np.ndarray  # H×W×3 uint8
    boxes: np.ndarray  # N×4 float (x1, y1, x2, y2)
    labels: np.ndarray  # N, index into CLASSES


def draw_scene(
    seed: int,
    width: int = 640,
    height: int = 480,
    count: tuple[int, int] = (3, 6),
    sizes: tuple[float, float] = (30, 80),
) -> Scene:
    """A cluttered scene with several non-overlapping shapes and their boxes."""
    rng = np.random.default_rng(seed)
    image, base = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    boxes: list[tuple[float, float, float, float]] = []
    labels: list[int] = []
    for _ in range(200):
        if len(boxes) >= int(rng.integers(count[0], count[1] + 1)) and boxes:
            break
        side = min(rng.uniform(*sizes), min(width, height) / 2 - 1)
        cx, cy = rng.uniform(side, width - side), rng.uniform(side, height - side)
        if any(
            abs(cx - (b[0] + b[2]) / 2) < (side + b[2] - b[0]) / 2 + 12
            and abs(cy - (b[1] + b[3]) / 2) < (side + b[3] - b[1]) / 2 + 12
            for b in boxes
        ):
            continue
        label = int(rng.integers(1, len(CLASSES)))
        box = _draw_shape(
            draw, CLASSES[label], cx, cy, side, rng.uniform(0, 2 * math.pi), _colour(rng, base)
        )
        boxes.append(box)
        labels.append(label)
    return Scene(
        _finish(image, rng), np.array(boxes, dtype=np.float32), np.array(labels, dtype=np.int64)
    )


# --- training and loading --------------------------------------------------------------------


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


def load_shapes(weights: str = "DEFAULT") -> Any:
    """The bundled classifier as a LoadedModel ("DEFAULT": the shipped weights)."""
    from safetensors.torch import load_file

    from .errors import ModelLoadError
    from .models import LoadedModel, load_state_dict

    model = ShapesNet()
    if weights.upper() == "DEFAULT":
        if not WEIGHTS.is_file():
            raise ModelLoadError(
                f"the bundled weights {WEIGHTS} are missing; reinstall fc2conv "
                "or run python -m fc2conv.shapes to train them"
            )
        state = load_file(str(WEIGHTS))
    elif weights.lower() == "none":
        state = None
    else:
        state = load_state_dict(weights)
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelLoadError(f"weights {weights} are not for shapes: {str(exc)[:300]}") from exc
    metadata = {
        "classes": CLASSES,
        "mean": MEAN,
        "std": STD,
        "box_fraction": BOX_FRACTION,
        "background": 0,
    }
    return LoadedModel(
        "shapes",
        model.eval(),
        (INPUT_SIZE, INPUT_SIZE),
        "bundled" if weights.upper() == "DEFAULT" else weights,
        metadata,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the bundled shapes classifier.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.perf_counter()
    model, accuracy = train(args.seed, args.steps)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out))
    print(
        f"held-out accuracy {accuracy:.3f}; {time.perf_counter() - start:.0f} s; "
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)"
    )


if __name__ == "__main__":
    main()


# --- quality ---------------------------------------------------------------------------------


@dataclass
class Quality:
    scenes: int
    objects: int
    true_positives: int
    false_positives: int
    peaks: int
    peaks_inside: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.objects if self.objects else 0.0

    @property
    def peak_rate(self) -> float:
        return self.peaks_inside / self.peaks if self.peaks else 0.0


#: heatmaps are single-scale: their scenes hold shapes of the classifier's own scale
HEATMAP_SIZES = (34.0, 54.0)


def evaluate(model: Any, seeds: range, iou: float = 0.5) -> Quality:
    """Detection precision/recall at ``iou`` and heatmap peak placement over seeded scenes.

    ``model`` is a converted shapes model or its .onnx file. Detection scenes hold shapes of
    30–80 px (the image pyramid covers them); heatmap scenes hold shapes of 34–54 px, the scale a
    single-scale heatmap sees. A class's heatmap peak counts when it lies inside a shape of
    that class.
    """
    from torchvision.ops import box_iou

    from .detect import detect
    from .heatmap import heatmap
    from .inference import as_runner

    runner = as_runner(model)
    tally = Quality(0, 0, 0, 0, 0, 0)
    for seed in seeds:
        scene = draw_scene(seed)
        found = detect(runner, scene.image)
        truth = torch.from_numpy(scene.boxes)
        matched: set[int] = set()
        for box, label in zip(found.boxes, found.labels, strict=True):  # sorted by score
            overlaps = box_iou(torch.from_numpy(box[None]), truth)[0]
            candidates = [
                i
                for i in range(len(truth))
                if i not in matched and scene.labels[i] == label and overlaps[i] >= iou
            ]
            if candidates:
                matched.add(max(candidates, key=lambda i: float(overlaps[i])))
                tally.true_positives += 1
            else:
                tally.false_positives += 1
        tally.objects += len(truth)
        tally.scenes += 1
        small = draw_scene(seed, sizes=HEATMAP_SIZES)
        maps = heatmap(runner, small.image)
        for label in sorted(set(small.labels.tolist())):
            x, y, _ = maps.peak(int(label))
            tally.peaks += 1
            tally.peaks_inside += any(
                small.labels[i] == label and b[0] <= x <= b[2] and b[1] <= y <= b[3]
                for i, b in enumerate(small.boxes)
            )
    return tally
