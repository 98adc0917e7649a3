"""How well the bundled classifier's maps find the shapes of seeded scenes.

Detection precision and recall (a box counts when it matches an unmatched shape of its class at
IoU ≥ 0.5) and heatmap peak placement (a class's peak counts when it lies inside a shape of that
class). ``benchmarks/shapes_quality.py`` reports them over 50 scenes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..run.boxes import box_iou
from ..run.detection import detect
from ..run.heatmaps import heatmap
from ..run.runner import as_runner
from .scenes import draw_scene

__all__ = ["HEATMAP_SIZES", "Quality", "evaluate"]


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
    runner = as_runner(model)
    tally = Quality(0, 0, 0, 0, 0, 0)
    for seed in seeds:
        scene = draw_scene(seed)
        found = detect(runner, scene.image)
        truth = scene.boxes
        matched: set[int] = set()
        for box, label in zip(found.boxes, found.labels, strict=True):  # sorted by score
            overlaps = box_iou(box[None], truth)[0]
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
