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
from .spec import INPUT_SIZE

__all__ = ["SIZES", "Quality", "evaluate"]


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


#: shapes from half the window to 1.5 windows (the window is 64 px)
SIZES = (0.5 * INPUT_SIZE, 1.5 * INPUT_SIZE)


def evaluate(model: Any, seeds: range, iou: float = 0.5) -> Quality:
    """Detection precision/recall at ``iou`` and heatmap peak placement over seeded scenes.

    ``model`` is a converted shapes model or its .onnx file. Scenes hold shapes of 32–96 px
    (half a window to 1.5 windows); detection and heatmaps run their default image pyramids.
    A class's heatmap peak counts when it lies inside a shape of that class.
    """
    runner = as_runner(model)
    tally = Quality(0, 0, 0, 0, 0, 0)
    for seed in seeds:
        scene = draw_scene(seed, sizes=SIZES)
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
        maps = heatmap(runner, scene.image)
        for label in sorted(set(scene.labels.tolist())):
            x, y = maps.peak(int(label))[:2]
            tally.peaks += 1
            tally.peaks_inside += any(
                scene.labels[i] == label and b[0] <= x <= b[2] and b[1] <= y <= b[3]
                for i, b in enumerate(scene.boxes)
            )
    return tally
