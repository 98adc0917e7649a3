"""Localisation on real photos: fc2conv's heatmaps and detections against Grad-CAM, on the same
ImageNet classifier (EfficientNet-Lite0, examples/efficientnet_lite0.py).

    python benchmarks/localisation.py                      # writes docs/localisation.md
    python benchmarks/localisation.py --composites 3 --out /tmp/loc.md --images /tmp/loc
    python benchmarks/localisation.py --wsol-dir wsol/ --wsol-size 224   # also the maps, as .npy

Objects cropped by hand from scikit-image's photos (OBJECTS; each kept because lite0's top-1 on
its crop lies in its class group; the regions tried and left out are LEFT_OUT) are pasted at
random sizes and places, without overlap, into 640x480 backgrounds cut from scikit-image images
without such objects (BACKGROUNDS), one or two objects per composite. Two sets of seeds: the
"tune" set, on which thresholds are chosen, and the "held-out" set, reported and never tuned on.

For each object and its class group (a group's map is the sum of its members' probabilities):
the pointing game (the group map's peak inside the object's box) and box accuracy (IoU >= 0.5)
of fc2conv's heatmap (the peak cell's box; the box of its map above a threshold), of
fc2conv.detect restricted to the group (its best box, its top box), and of Grad-CAM
(pytorch_grad_cam on lite0's last MBConv block; the box of the largest connected region above a
threshold, as wsolevaluation's MaxBoxAcc takes it, at the set's best threshold and at the tune
set's), and of fc2conv's CAM (lite0 exported with mode="cam", run once on the composite as it
is: its class activation map for every class; the box of its map above a threshold). fc2conv
runs its ONNX export in onnxruntime (one pass over the pyramid gives every class); Grad-CAM runs
one forward and one backward per class group present. They are timed
alternately, composite by composite, in one run, with fc2conv's int8 copy (calibrated on the
tune composites). Detection precision and recall at IoU >= 0.5 use fc2conv.detect with the
classes of all groups, at its default settings and at the score threshold and box fraction best
on the tune set (swept over the same maps, kept once computed).

``--wsol-dir`` also writes every map in the layout wsolevaluation reads (see :class:`Wsol`).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, cpu_flags, machine
from PIL import Image

import fc2conv
from fc2conv.run import Runner
from fc2conv.run.boxes import box_iou
from fc2conv.run.detection import BOX_FRACTION, CAM_REGION
from fc2conv.run.heatmaps import class_members
from fc2conv.run.scoremaps import unit_scaled

LITE0 = "examples.efficientnet_lite0:build"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CANONICAL = 224  #: lite0's input, height and width
CANVAS = (480, 640)  #: height, width of a composite
OBJECT_SIZE = (120, 340)  #: the longer side of a pasted object, pixels (uniform)
ONE_OBJECT_SHARE = 0.25  #: the share of composites with one object (the others have two)
MARGIN = 8  #: pixels kept free between two pasted objects
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)  #: the map thresholds swept
IOU = 0.5  #: a box is right at this IoU or more
DETECT_SCORE = 0.6  #: fc2conv.detect's default score threshold (for the note on groups)


@dataclass(frozen=True)
class PhotoObject:
    """A region of a scikit-image photo: ``crop`` (x1, y1, x2, y2 in the photo, chosen by hand
    to frame the object; None: the whole photo) and the ImageNet classes that name the object
    (names joined by commas, summed into one map; None: ImageNet has no class for it)."""

    name: str
    photo: str
    crop: tuple[int, int, int, int] | None
    group: str | None


OBJECTS = (
    PhotoObject(
        "cat", "chelsea", (20, 0, 430, 300), "tabby,tiger cat,Persian cat,Siamese cat,Egyptian cat"
    ),
    PhotoObject("cup", "coffee", (70, 15, 485, 390), "espresso,cup,coffee mug"),
    PhotoObject("tripod", "camera", (200, 120, 420, 512), "tripod,reflex camera,Polaroid camera"),
    PhotoObject("rocket", "rocket", (200, 100, 440, 427), "missile,projectile,space shuttle"),
    PhotoObject("motorcycle", "stereo_motorcycle", (90, 90, 690, 455), "moped,motor scooter"),
)
#: regions tried and left out; skimage's ``cat`` is chelsea again
LEFT_OUT = (
    PhotoObject("shuttle model", "astronaut", (350, 0, 475, 290), "space shuttle"),
    PhotoObject("helmet", "astronaut", (275, 340, 512, 512), "crash helmet,football helmet"),
    PhotoObject("astronaut", "astronaut", None, None),
    PhotoObject("clock", "clock", None, "wall clock,analog clock"),
    PhotoObject("coins", "coins", None, None),
)
#: scikit-image images without those objects: four textures and a photo of galaxies
BACKGROUNDS = ("brick", "grass", "gravel", "text", "hubble_deep_field")
GROUPS = [str(obj.group) for obj in OBJECTS]

FC2CONV, INT8, CAM = "fc2conv", "fc2conv int8", "fc2conv CAM"
GRADCAM, GRADCAM_FULL = "Grad-CAM", "Grad-CAM 640x480"
DETECT, DETECT_CAM = "fc2conv.detect", "fc2conv.detect CAM"
#: how the detection tables name each export's detections
EXPORTS = {DETECT: "window export", DETECT_CAM: "cam export"}
#: the methods whose maps are scored by the box of their region above a threshold
MAPS = (FC2CONV, CAM, GRADCAM, GRADCAM_FULL)
#: how the tables name the map methods
LABELS = {
    FC2CONV: "fc2conv map",
    INT8: "fc2conv int8",
    CAM: "fc2conv CAM (640x480 input)",
    GRADCAM: "Grad-CAM (224x224 input)",
    GRADCAM_FULL: "Grad-CAM (640x480 input)",
}


# --- the composites ---------------------------------------------------------------------------


def photo(name: str) -> np.ndarray:
    """A scikit-image image as H×W×3 uint8 (grey repeated; stereo_motorcycle: its left view)."""
    from skimage import data

    image = getattr(data, name)()
    if name == "stereo_motorcycle":
        image = image[0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def object_patch(obj: PhotoObject) -> np.ndarray:
    image = photo(obj.photo)
    if obj.crop is None:
        return image
    x1, y1, x2, y2 = obj.crop
    return np.ascontiguousarray(image[y1:y2, x1:x2])


def resized(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def background(name: str, rng: np.random.Generator) -> np.ndarray:
    """The image scaled to cover the canvas (1 to 1.3 times more) and cut at random."""
    image = photo(name)
    height, width = CANVAS
    scale = max(height / image.shape[0], width / image.shape[1]) * rng.uniform(1.0, 1.3)
    image = resized(image, round(image.shape[0] * scale) + 1, round(image.shape[1] * scale) + 1)
    top = int(rng.integers(0, image.shape[0] - height + 1))
    left = int(rng.integers(0, image.shape[1] - width + 1))
    return image[top : top + height, left : left + width].copy()


@dataclass
class Placed:
    """An object pasted into a composite at ``box`` (x1, y1, x2, y2; x2 and y2 exclusive)."""

    obj: PhotoObject
    box: tuple[int, int, int, int]

    @property
    def group(self) -> str:
        return str(self.obj.group)


@dataclass
class Composite:
    seed: int
    background: str
    image: np.ndarray  #: H×W×3 uint8
    objects: list[Placed]

    @property
    def name(self) -> str:
        return f"{self.seed:05d}"


def apart(box: tuple[int, int, int, int], others: list[Placed]) -> bool:
    """Whether ``box`` stays MARGIN pixels away from the boxes of ``others``."""
    x1, y1, x2, y2 = box
    return all(
        x2 + MARGIN <= o.box[0]
        or o.box[2] + MARGIN <= x1
        or y2 + MARGIN <= o.box[1]
        or o.box[3] + MARGIN <= y1
        for o in others
    )


def compose(seed: int, patches: dict[str, np.ndarray]) -> Composite:
    """A background with one or two objects of different groups at random sizes (longer side
    in OBJECT_SIZE), places and mirror images, not overlapping."""
    rng = np.random.default_rng(seed)
    name = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    canvas = background(name, rng)
    count = 1 if rng.random() < ONE_OBJECT_SHARE else 2
    placed: list[Placed] = []
    for index in rng.choice(len(OBJECTS), count, replace=False):
        obj = OBJECTS[int(index)]
        patch = patches[obj.name]
        if rng.random() < 0.5:
            patch = np.ascontiguousarray(patch[:, ::-1])
        longest = rng.uniform(*OBJECT_SIZE)
        for attempt in range(400):  # 5% smaller every 40 attempts, until it fits
            scale = longest / max(patch.shape[:2]) * 0.95 ** (attempt // 40)
            height, width = round(patch.shape[0] * scale), round(patch.shape[1] * scale)
            x = int(rng.integers(0, CANVAS[1] - width + 1))
            y = int(rng.integers(0, CANVAS[0] - height + 1))
            box = (x, y, x + width, y + height)
            if apart(box, placed):
                break
        else:
            raise RuntimeError(f"seed {seed}: no room for the {obj.name}")
        canvas[y : y + height, x : x + width] = resized(patch, height, width)
        placed.append(Placed(obj, box))
    return Composite(seed, name, canvas, placed)


# --- the methods ------------------------------------------------------------------------------


def export_lite0(cache: Path, mode: str = "window") -> Path:
    """lite0 exported with fc2conv's Python API in ``mode`` ("window": a cell per window;
    "cam": its class-activation map), once (kept in ``cache``)."""
    path = cache / ("lite0_fcn.onnx" if mode == "window" else f"lite0_{mode}.onnx")
    if path.is_file():
        return path
    from examples.efficientnet_lite0 import imagenet_classes

    cache.mkdir(parents=True, exist_ok=True)
    print(f"exporting {LITE0} to {path}")
    fc2conv.export_model(
        LITE0,
        path,
        input_size=(CANONICAL, CANONICAL),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        classes=imagenet_classes(),
        mode=mode,
    )
    return path


class GroupLogits:
    """Grad-CAM's target for a class group: the sum of its members' logits (Grad-CAM's y^c)."""

    def __init__(self, members: list[int]) -> None:
        self.members = members

    def __call__(self, output: Any) -> Any:
        return output[..., self.members].sum(-1)


@dataclass
class Methods:
    """fc2conv's fp32 and int8 runners, its class-activation map, and Grad-CAM on lite0 in
    PyTorch."""

    fp32: Runner
    int8: Runner | None
    activation: Runner  #: lite0 converted with mode="cam"
    cam: Any  #: pytorch_grad_cam.GradCAM
    members: dict[str, list[int]]  #: each group's class indices

    def gradcam_maps(
        self, image: np.ndarray, groups: list[str], full_size: bool = False
    ) -> list[np.ndarray]:
        """Grad-CAM's map of each group, in [0, 1] at the image's size, one forward and one
        backward each; lite0 sees the image resized to its 224x224 input, as a classifier is
        fed, or (``full_size``) as it is."""
        import cv2
        import torch

        height, width = image.shape[:2]
        fed = image if full_size else resized(image, CANONICAL, CANONICAL)
        pixels = (fed.astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
        tensor = torch.from_numpy(pixels.transpose(2, 0, 1)[None].astype(np.float32))
        maps = []
        for group in groups:
            grey = self.cam(input_tensor=tensor, targets=[GroupLogits(self.members[group])])[0]
            if grey.shape != (height, width):
                grey = cv2.resize(grey, (width, height), interpolation=cv2.INTER_LINEAR)
            maps.append(np.clip(grey, 0, 1))
        return maps


def open_methods(onnx_path: Path, int8_path: Path | None, cam_path: Path) -> Methods:
    import torch
    from pytorch_grad_cam import GradCAM

    from examples.efficientnet_lite0 import build

    fp32 = fc2conv.open_model(onnx_path)
    int8 = fc2conv.open_model(int8_path) if int8_path else None
    model = build()
    torch.set_num_threads(os.cpu_count() or 1)  # as many as onnxruntime: one per core
    cam = GradCAM(model=model, target_layers=[model._blocks[-1]])  # the last MBConv block
    members = {group: class_members(fp32.classes, group) for group in GROUPS}
    return Methods(fp32, int8, fc2conv.open_model(cam_path), cam, members)


def quantize_int8(
    onnx_path: Path, sets: dict[str, list[Composite]], folder: Path
) -> tuple[Path, Any]:
    """fc2conv's static int8 copy (``fc2conv.run.quantize.quantize``, what ``fc2conv quantize``
    runs), calibrated on the tune composites and compared with fp32 on the held-out ones."""
    from fc2conv.run.quantize import quantize

    paths: dict[str, list[Path]] = {}
    for set_name, composites in sets.items():
        (folder / set_name).mkdir(parents=True, exist_ok=True)
        paths[set_name] = []
        for composite in composites:
            path = folder / set_name / f"{composite.name}.png"
            Image.fromarray(composite.image).save(path)
            paths[set_name].append(path)
    target = folder / "lite0_int8.onnx"
    report = quantize(onnx_path, paths["tune"], target, held_out=paths["held-out"], force=True)
    return target, report


# --- scoring ----------------------------------------------------------------------------------


def iou(first: tuple[float, ...], second: tuple[float, ...]) -> float:
    return float(box_iou(np.array([first], float), np.array([second], float))[0, 0])


def inside(x: float, y: float, box: tuple[int, int, int, int]) -> bool:
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def threshold_box(scoremap: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """The bounding box of the largest 8-connected region where the [0, 1] map exceeds
    ``threshold`` (wsolevaluation: the largest contour's box); zeros if there is none."""
    import cv2

    mask = (scoremap > threshold).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return (0, 0, 0, 0)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, width, height = (int(v) for v in stats[largest, :4])
    return (x, y, x + width, y + height)


def threshold_ious(scoremap: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The IoU with ``box`` of the map's threshold box at each of THRESHOLDS."""
    scaled = unit_scaled(scoremap)
    return np.array([iou(threshold_box(scaled, t), box) for t in THRESHOLDS])


def map_peak(scoremap: np.ndarray) -> tuple[float, float]:
    """The centre (x, y) of the map's highest pixel."""
    row, col = np.unravel_index(int(np.argmax(scoremap)), scoremap.shape)
    return col + 0.5, row + 0.5


@dataclass
class ObjectScores:
    """How each method localised one pasted object."""

    composite: str
    name: str
    box: tuple[int, int, int, int]
    pointing: dict[str, bool] = field(default_factory=dict)  #: method -> its peak in the box
    peak_iou: dict[str, float] = field(default_factory=dict)  #: fc2conv: the peak cell's box
    peak_score: float = 0.0  #: fc2conv's group probability at its peak
    threshold_ious: dict[str, np.ndarray] = field(default_factory=dict)  #: at each THRESHOLDS
    detections: int = 0  #: the boxes detect gave the group
    detection_best_iou: float = 0.0  #: the best of them (0: none)
    detection_top_iou: float = 0.0  #: the highest-scoring one
    detection_area: float = 0.0  #: the best one's area over the object's


@dataclass
class ImageScores:
    composite: Composite
    objects: list[ObjectScores]
    seconds: dict[str, float]
    found: dict[
        str, list[tuple[str, float, tuple[float, ...]]]
    ]  #: detect of each export: group, score, box


def group_of(label: str) -> str:
    """The group a detection's class belongs to: one of its members, or the group itself (its
    members joined by "+")."""
    members = set(label.split("+"))
    return next(group for group in GROUPS if members <= set(group.split(",")))


def score_composite(composite: Composite, methods: Methods, wsol: Wsol | None) -> ImageScores:
    """Every method on one composite, timed one after the other in the same order for every
    composite: fc2conv, Grad-CAM at 224x224, Grad-CAM at 640x480, fc2conv int8, fc2conv's CAM,
    fc2conv.detect (then, untimed, detect for each object's group)."""
    image, groups = composite.image, [placed.group for placed in composite.objects]
    seconds: dict[str, float] = {}

    def timed(name: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = call(*args, **kwargs)
        seconds[name] = time.perf_counter() - start
        return result

    heatmaps = {FC2CONV: timed(FC2CONV, fc2conv.heatmap, methods.fp32, image).select(groups)}
    cams = timed(GRADCAM, methods.gradcam_maps, image, groups)
    cams_full = timed(GRADCAM_FULL, methods.gradcam_maps, image, groups, full_size=True)
    if methods.int8 is not None:
        heatmaps[INT8] = timed(INT8, fc2conv.heatmap, methods.int8, image).select(groups)
    activations = timed(CAM, fc2conv.heatmap, methods.activation, image).select(groups)
    found = timed(DETECT, detections, methods.fp32, composite)
    found_cam = timed(DETECT_CAM, detections, methods.activation, composite)
    scores = []
    for index, placed in enumerate(composite.objects):
        box = placed.box
        result = ObjectScores(composite.name, placed.obj.name, box)
        for method, heat in heatmaps.items():
            peak = heat.peak(index)
            result.pointing[method] = inside(peak.x, peak.y, box)
            result.peak_iou[method] = iou(peak.box, box)
        result.peak_score = heatmaps[FC2CONV].peak(index).score
        dense = heatmaps[FC2CONV].dense(index)
        result.threshold_ious[FC2CONV] = threshold_ious(dense, box)
        activation = activations.dense(index)
        peak = activations.peak(index)
        result.pointing[CAM] = inside(peak.x, peak.y, box)
        result.threshold_ious[CAM] = threshold_ious(activation, box)
        for method, cam in ((GRADCAM, cams[index]), (GRADCAM_FULL, cams_full[index])):
            result.pointing[method] = inside(*map_peak(cam), box)
            result.threshold_ious[method] = threshold_ious(cam, box)
        boxes = fc2conv.detect(methods.fp32, image, classes=[placed.group])
        result.detections = len(boxes)
        if len(boxes):
            ious = [iou(tuple(b), box) for b in boxes.boxes]
            best = boxes.boxes[int(np.argmax(ious))]
            object_area = (box[2] - box[0]) * (box[3] - box[1])
            result.detection_best_iou, result.detection_top_iou = max(ious), ious[0]
            result.detection_area = float((best[2] - best[0]) * (best[3] - best[1])) / object_area
        if wsol is not None:
            maps = {
                "fc2conv": dense,
                "fc2conv_cam": activation,
                "gradcam": cams[index],
                "gradcam_640x480": cams_full[index],
            }
            wsol.add(composite, placed, maps)
        scores.append(result)
    return ImageScores(composite, scores, seconds, {DETECT: found, DETECT_CAM: found_cam})


# --- wsolevaluation's layout ------------------------------------------------------------------


class Wsol:
    """Maps in the layout of wsolevaluation's evaluation.py, one image id per composite and
    object, ``<composite>/<object>``: ``DIR/<method>/<set>/<composite>/<object>.npy`` (a 2-D
    float32 map in [0, 1], scaled by its minimum and maximum as wsolevaluation's
    normalize_scoremap; image-sized, or ``size``×``size``); ``DIR/metadata/ILSVRC/<set>/`` with
    image_ids.txt, class_labels.txt (``<id>,<group index>``), image_sizes.txt
    (``<id>,<width>,<height>``) and localization.txt (``<id>,x0,y0,x1,y1``, inclusive pixels);
    ``DIR/metadata/groups.txt`` (``<index>,<object>,<classes>``); the composites in
    ``DIR/images/<set>/<composite>.png``."""

    def __init__(self, folder: Path, set_name: str, size: int | None) -> None:
        self.folder, self.set_name, self.size = folder, set_name, size
        self.lines: dict[str, list[str]] = {
            "image_ids": [],
            "class_labels": [],
            "image_sizes": [],
            "localization": [],
        }

    def add(self, composite: Composite, placed: Placed, maps: dict[str, np.ndarray]) -> None:
        import cv2

        image_id = f"{composite.name}/{placed.obj.name}"
        for method, scoremap in maps.items():
            target = self.folder / method / self.set_name / f"{image_id}.npy"
            target.parent.mkdir(parents=True, exist_ok=True)
            if self.size:
                scoremap = cv2.resize(scoremap, (self.size, self.size), cv2.INTER_LINEAR)
            np.save(target, unit_scaled(scoremap))
        picture = self.folder / "images" / self.set_name / f"{composite.name}.png"
        picture.parent.mkdir(parents=True, exist_ok=True)
        if not picture.exists():
            Image.fromarray(composite.image).save(picture)
        height, width = composite.image.shape[:2]
        x1, y1, x2, y2 = placed.box
        self.lines["image_ids"].append(image_id)
        self.lines["class_labels"].append(f"{image_id},{GROUPS.index(placed.group)}")
        self.lines["image_sizes"].append(f"{image_id},{width},{height}")
        self.lines["localization"].append(f"{image_id},{x1},{y1},{x2 - 1},{y2 - 1}")

    def write(self) -> None:
        folder = self.folder / "metadata" / "ILSVRC" / self.set_name
        folder.mkdir(parents=True, exist_ok=True)
        for name, lines in self.lines.items():
            (folder / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines))
        groups = "".join(f"{i},{obj.name},{obj.group}\n" for i, obj in enumerate(OBJECTS))
        (self.folder / "metadata" / "groups.txt").write_text(groups)


# --- summaries --------------------------------------------------------------------------------


def objects_of(results: list[ImageScores]) -> list[ObjectScores]:
    return [obj for image in results for obj in image.objects]


def share(hits: list[bool]) -> str:
    return f"{sum(hits)}/{len(hits)} ({100 * np.mean(hits):.0f}%)"


def best_threshold(objects: list[ObjectScores], method: str) -> float:
    """The threshold of THRESHOLDS with the best box accuracy (the lowest of equals)."""
    accuracy = np.mean([obj.threshold_ious[method] >= IOU for obj in objects], axis=0)
    return float(THRESHOLDS[int(np.argmax(accuracy))])


def at_threshold(objects: list[ObjectScores], method: str, threshold: float) -> list[bool]:
    column = int(np.flatnonzero(np.isclose(THRESHOLDS, threshold))[0])
    return [bool(obj.threshold_ious[method][column] >= IOU) for obj in objects]


def precision_recall(results: list[ImageScores], method: str) -> tuple[int, int, int]:
    """Right boxes, boxes and objects of the detections the run found (default settings)."""
    return matched_boxes([(image.composite, image.found[method]) for image in results])


Found = list[tuple[str, float, tuple[float, ...]]]  #: detections: group, score, box


def detections(runner: Any, composite: Composite, **settings: Any) -> Found:
    """fc2conv.detect over the composite, the classes of every group."""
    found = fc2conv.detect(runner, composite.image, classes=GROUPS, **settings)
    return [
        (group_of(item["class"]), item["score"], tuple(item["box"])) for item in found.as_list()
    ]


def matched_boxes(images: list[tuple[Composite, Found]]) -> tuple[int, int, int]:
    """Right boxes, boxes and objects: a box is right when its class is in the group of a not
    yet matched object and their IoU is at least IOU (best scores first)."""
    right = boxes = objects = 0
    for composite, found in images:
        matched: set[int] = set()
        objects += len(composite.objects)
        for group, _, box in sorted(found, key=lambda item: -item[1]):
            boxes += 1
            candidates = [
                (iou(box, placed.box), i)
                for i, placed in enumerate(composite.objects)
                if placed.group == group and i not in matched
            ]
            overlap, index = max(candidates, default=(0.0, -1))
            if overlap >= IOU:
                matched.add(index)
                right += 1
    return right, boxes, objects


#: the detection settings tried on the tune set: score thresholds and box fractions
SWEEP_SCORES = (0.2, 0.3, 0.4, 0.5, 0.6)
SWEEP_FRACTIONS = (0.5, 0.6, 0.7, 0.8)


def remembering(runner: Runner) -> Runner:
    """A copy of ``runner`` that keeps every map it computes, by its input's bytes, so that
    detection settings can be swept over the same composites without running the model again
    (the same maps, bit for bit)."""
    import copy
    import hashlib

    copied = copy.copy(runner)
    for name in ("probabilities", "logits"):
        memo: dict[bytes, np.ndarray] = {}
        compute = getattr(runner, name)

        def remembered(image: np.ndarray, memo: Any = memo, compute: Any = compute) -> np.ndarray:
            key = hashlib.sha256(repr(image.shape).encode() + image.tobytes()).digest()
            if key not in memo:
                memo[key] = compute(image)
            return memo[key]

        setattr(copied, name, remembered)
    return copied


@dataclass
class Sweep:
    """Detection precision and recall over the tune set for each setting, the setting best on
    it (the highest of min(precision, recall), then of their sum) and the held-out figures
    at that setting: (right boxes, boxes, objects) each."""

    tune: dict[tuple[float, float], tuple[int, int, int]]
    best: tuple[float, float]
    held: tuple[int, int, int]


def sweep_detection(runner: Runner, sets: dict[str, list[Composite]]) -> Sweep:
    remembered = remembering(runner)
    tune = {}
    for score in SWEEP_SCORES:
        for fraction in SWEEP_FRACTIONS:
            settings = {"score_threshold": score, "box_fraction": fraction}
            tune[(score, fraction)] = matched_boxes(
                [(c, detections(remembered, c, **settings)) for c in sets["tune"]]
            )

    def merit(counts: tuple[int, int, int]) -> tuple[float, float]:
        precision, recall = counts[0] / max(counts[1], 1), counts[0] / counts[2]
        return min(precision, recall), precision + recall

    best = max(tune, key=lambda setting: merit(tune[setting]))
    settings = {"score_threshold": best[0], "box_fraction": best[1]}
    held = matched_boxes([(c, detections(runner, c, **settings)) for c in sets["held-out"]])
    return Sweep(tune, best, held)


def sweep_rows(sweep: Sweep) -> list[str]:
    """The tune set's precision / recall for each score threshold (rows) and box fraction."""
    rows = [
        "| score threshold | " + " | ".join(f"box fraction {f:g}" for f in SWEEP_FRACTIONS) + " |",
        "|---:|" + "---:|" * len(SWEEP_FRACTIONS),
    ]
    for score in SWEEP_SCORES:
        cells = []
        for fraction in SWEEP_FRACTIONS:
            right, boxes, objects = sweep.tune[(score, fraction)]
            cell = f"{right / max(boxes, 1):.2f} / {right / objects:.2f}"
            cells.append(f"**{cell}**" if (score, fraction) == sweep.best else cell)
        rows.append(f"| {score:g} | " + " | ".join(cells) + " |")
    return rows


def median(results: list[ImageScores], method: str) -> float:
    return statistics.median(image.seconds[method] for image in results)


def classes_per_image(results: list[ImageScores]) -> float:
    return float(np.mean([len(image.objects) for image in results]))


@dataclass
class SetSummary:
    """One set's table rows, and the shares the targets compare."""

    rows: list[str]
    shares: dict[str, float]


def localisation_table(objects: list[ObjectScores], tuned: dict[str, float]) -> SetSummary:
    pointing = {method: [o.pointing[method] for o in objects] for method in objects[0].pointing}
    peak_hits = [o.peak_iou[FC2CONV] >= IOU for o in objects]
    best_hits = [o.detection_best_iou >= IOU for o in objects]
    top_hits = [o.detection_top_iou >= IOU for o in objects]
    rows = [
        "| method | box | pointing (peak in box) | box accuracy (IoU >= 0.5) |",
        "|---|---|---:|---:|",
        f"| fc2conv | the peak cell's box | {share(pointing[FC2CONV])} | {share(peak_hits)} |",
        f"| fc2conv | detect (group only): its best box | | {share(best_hits)} |",
        f"| fc2conv | detect (group only): its top box | | {share(top_hits)} |",
    ]
    shares = {
        "pointing fc2conv": float(np.mean(pointing[FC2CONV])),
        "peak box fc2conv": float(np.mean(peak_hits)),
        "detection fc2conv": float(np.mean(best_hits)),
    }
    for method in MAPS:
        best = best_threshold(objects, method)
        at_best = at_threshold(objects, method, best)
        at_tuned = at_threshold(objects, method, tuned[method])
        shown = "" if method == FC2CONV else share(pointing[method])
        rows += [
            f"| {LABELS[method]} | map > {best:g}: this set's best | {shown} | {share(at_best)} |",
            f"| {LABELS[method]} | map > {tuned[method]:g}: the tune set's best | | "
            f"{share(at_tuned)} |",
        ]
        shares[f"pointing {method}"] = float(np.mean(pointing[method]))
        shares[f"box {method}"] = float(np.mean(at_best))
        shares[f"tuned box {method}"] = float(np.mean(at_tuned))
    if INT8 in pointing:
        int8_hits = [o.peak_iou[INT8] >= IOU for o in objects]
        rows.append(
            f"| fc2conv int8 | the peak cell's box | {share(pointing[INT8])} | {share(int8_hits)} |"
        )
    return SetSummary(rows, shares)


def detection_notes(objects: list[ObjectScores]) -> str:
    """What the detections look like: boxes per object, their size, and the objects whose
    group map is confident while detect finds no box of the group."""
    found = [o for o in objects if o.detections]
    missed = [o for o in objects if o.peak_score >= DETECT_SCORE and not o.detections]
    areas = [o.detection_area for o in found]
    text = (
        f"detect gave {np.mean([o.detections for o in objects]):.2f} boxes of the object's group "
        f"per object; {len(found)} of {len(objects)} objects got one"
    )
    if areas:
        text += f", the best one {statistics.median(areas):.1f} times the object's area (median)"
    return text + (
        f"; {len(missed)} objects whose group probability peaks at {DETECT_SCORE} or more got none."
    )


def per_object_table(sets: dict[str, list[ObjectScores]], tuned: dict[str, float]) -> list[str]:
    rows = [
        "| set | object | N | fc2conv pointing | fc2conv peak box | fc2conv detect, best box | "
        f"fc2conv CAM pointing | fc2conv CAM box (map > {tuned[CAM]:g}) | "
        f"Grad-CAM pointing | Grad-CAM box (map > {tuned[GRADCAM]:g}) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for set_name, objects in sets.items():
        for obj in OBJECTS:
            mine = [o for o in objects if o.name == obj.name]
            if not mine:
                continue

            def hits(values: list[bool]) -> str:
                return f"{sum(values)}/{len(values)}"

            rows.append(
                f"| {set_name} | {obj.name} | {len(mine)} | "
                f"{hits([o.pointing[FC2CONV] for o in mine])} | "
                f"{hits([o.peak_iou[FC2CONV] >= IOU for o in mine])} | "
                f"{hits([o.detection_best_iou >= IOU for o in mine])} | "
                f"{hits([o.pointing[CAM] for o in mine])} | "
                f"{hits(at_threshold(mine, CAM, tuned[CAM]))} | "
                f"{hits([o.pointing[GRADCAM] for o in mine])} | "
                f"{hits(at_threshold(mine, GRADCAM, tuned[GRADCAM]))} |"
            )
    return rows


def timing_table(results: dict[str, list[ImageScores]]) -> list[str]:
    present = [
        m
        for m in (FC2CONV, INT8, CAM, GRADCAM, GRADCAM_FULL, DETECT, DETECT_CAM)
        if m in _seconds(results)
    ]
    rows = [
        "| set | "
        + " | ".join(present)
        + " | fc2conv / Grad-CAM | fc2conv CAM / Grad-CAM | classes per image |",
        "|---|" + "---:|" * (len(present) + 3),
    ]
    for set_name, images in results.items():
        cells = []
        for method in present:
            values = [image.seconds[method] for image in images]
            cells.append(f"{statistics.median(values):.3f} ({min(values):.2f}–{max(values):.2f})")
        ratios = [median(images, mine) / median(images, GRADCAM) for mine in (FC2CONV, CAM)]
        rows.append(
            f"| {set_name} | {' | '.join(cells)} | {ratios[0]:.2f} | {ratios[1]:.2f} | "
            f"{classes_per_image(images):.2f} |"
        )
    return rows


def _seconds(results: dict[str, list[ImageScores]]) -> dict[str, float]:
    return next(iter(results.values()))[0].seconds


def targets_lines(shares: dict[str, float], held: list[ImageScores]) -> list[str]:
    """Each fc2conv configuration (the window pyramid; the CAM) against Grad-CAM at either input
    size, on pointing, box accuracy and time: a configuration meets the targets against a
    Grad-CAM when it meets all three."""

    def verdict(met: bool) -> str:
        return "met" if met else "**missed**"

    def pct(value: float) -> str:
        return f"{100 * value:.0f}%"

    window_box = max(shares["peak box fc2conv"], shares["detection fc2conv"])
    configurations = (
        (
            "fc2conv (window pyramid)",
            FC2CONV,
            shares["pointing fc2conv"],
            window_box,
            f"the better of its peak box, {pct(shares['peak box fc2conv'])}, and its detections, "
            f"{pct(shares['detection fc2conv'])}",
        ),
        (
            "fc2conv CAM",
            CAM,
            shares[f"pointing {CAM}"],
            shares[f"box {CAM}"],
            f"its map at its best threshold on this set; at the tune set's, "
            f"{pct(shares[f'tuned box {CAM}'])}",
        ),
    )
    lines = []
    for name, timed_as, point, box, how in configurations:
        mine = median(held, timed_as)
        for method in (GRADCAM, GRADCAM_FULL):
            their_point, their_box = shares[f"pointing {method}"], shares[f"box {method}"]
            theirs = median(held, method)
            lines += [
                f"- {name} against {LABELS[method]}:",
                f"  - pointing: {pct(point)} against {pct(their_point)}: "
                + (
                    "tied, both find every object"
                    if point == their_point == 1.0
                    else verdict(point > their_point)
                ),
                f"  - box accuracy: {pct(box)} ({how}) against {pct(their_box)} (its map at its "
                f"best threshold on this set; at the tune set's, "
                f"{pct(shares[f'tuned box {method}'])}): {verdict(box > their_box)}",
                f"  - at most half its time per image: {mine:.3f} s against {theirs:.3f} s, "
                f"{mine / theirs:.2f} times as long: {verdict(mine <= theirs / 2)}",
            ]
    if INT8 in held[0].seconds:
        int8, theirs = median(held, INT8), median(held, GRADCAM)
        lines.append(
            f"- fc2conv's int8 copy of the window pyramid: {int8:.3f} s, {int8 / theirs:.2f} "
            f"times Grad-CAM's (224x224 input): {verdict(int8 <= theirs / 2)}"
        )
    return lines


# --- pictures ---------------------------------------------------------------------------------


def draw_example(
    composite: Composite, methods: Methods, path: Path, thresholds: dict[str, float]
) -> None:
    """One row per object: the composite with the object's box (white, dashed), fc2conv's peak
    cell (cyan) and best detection of the group (yellow); fc2conv's group map; fc2conv's CAM
    and Grad-CAM's map (224x224 input), each with its box at its ``thresholds`` (magenta)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    groups = [placed.group for placed in composite.objects]
    maps = fc2conv.heatmap(methods.fp32, composite.image).select(groups)
    activations = fc2conv.heatmap(methods.activation, composite.image).select(groups)
    cams = methods.gradcam_maps(composite.image, groups)
    rows = len(composite.objects)
    figure, axes = plt.subplots(rows, 4, figsize=(13.3, 2.6 * rows), squeeze=False)

    def frame(ax: Any, box: tuple[float, ...], colour: str, style: str = "-") -> None:
        x1, y1, x2, y2 = box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=2, ls=style))

    for row, placed in enumerate(composite.objects):
        peak = maps.peak(row)
        found = fc2conv.detect(methods.fp32, composite.image, classes=[placed.group])
        left, middle, activation, right = axes[row]
        for ax in (left, middle, activation, right):
            ax.imshow(composite.image)
            ax.set_axis_off()
        frame(left, placed.box, "white", "--")
        if len(found):
            frame(left, tuple(max(found.boxes, key=lambda b: iou(tuple(b), placed.box))), "yellow")
        frame(left, peak.box, "cyan", ":")  # on top: it is often the detection's box too
        left.set_title(f"{placed.obj.name}: fc2conv peak cell, best detection", fontsize=9)
        middle.imshow(maps.dense(row), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        middle.plot(peak.x, peak.y, "w+", ms=14, mew=3)
        frame(middle, placed.box, "white", "--")
        middle.set_title(f"fc2conv: group probability (peak {peak.score:.2f})", fontsize=9)
        scaled = unit_scaled(activations.dense(row))
        activation.imshow(scaled, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        best = activations.peak(row)
        activation.plot(best.x, best.y, "w+", ms=14, mew=3)
        frame(activation, placed.box, "white", "--")
        frame(activation, threshold_box(scaled, thresholds[CAM]), "magenta")
        found = fc2conv.detect(methods.activation, composite.image, classes=[placed.group])
        if len(found):
            best_box = max(found.boxes, key=lambda b: iou(tuple(b), placed.box))
            frame(activation, tuple(best_box), "yellow", ":")
        activation.set_title(f"fc2conv CAM, box at {thresholds[CAM]:g}; its detection", fontsize=9)
        right.imshow(cams[row], cmap="jet", alpha=0.5, vmin=0, vmax=1)
        right.plot(*map_peak(cams[row]), "w+", ms=14, mew=3)
        frame(right, placed.box, "white", "--")
        frame(right, threshold_box(cams[row], thresholds[GRADCAM]), "magenta")
        right.set_title(f"Grad-CAM (224x224 input), box at {thresholds[GRADCAM]:g}", fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=72)
    plt.close(figure)
    picture = Image.open(buffer).convert("RGB").quantize(256, Image.Quantize.MEDIANCUT)  # small
    picture.save(path, optimize=True)


def choose_examples(results: list[ImageScores]) -> list[tuple[Composite, str]]:
    """The first held-out composite with two objects, and the first where fc2conv's and
    Grad-CAM's pointing disagree (if it is another), with what each shows."""
    two = [image.composite for image in results if len(image.objects) == 2]
    disagree = [
        image.composite
        for image in results
        if any(o.pointing[FC2CONV] != o.pointing[GRADCAM] for o in image.objects)
    ]
    chosen = [(two[0] if two else results[0].composite, "the first with two objects")]
    if disagree and disagree[0] is not chosen[0][0]:
        chosen.append((disagree[0], "the first where fc2conv's and Grad-CAM's pointing disagree"))
    return chosen


# --- the report -------------------------------------------------------------------------------


def lite0_view(runner: Runner, image: np.ndarray) -> np.ndarray:
    """lite0's class probabilities for the image resized to its 224x224 input."""
    return runner.probabilities(resized(image, CANONICAL, CANONICAL) / 255)[:, 0, 0]


def objects_table(runner: Runner) -> list[str]:
    rows = [
        "| object | skimage.data | crop x1,y1,x2,y2 | lite0's top-1 on it | group | "
        "group probability | used |",
        "|---|---|---|---|---|---:|---|",
    ]
    for obj in (*OBJECTS, *LEFT_OUT):
        patch = object_patch(obj)
        probabilities = lite0_view(runner, patch)
        best = int(np.argmax(probabilities))
        name = runner.classes[best]
        group = obj.group or "(no ImageNet class)"
        total = sum(probabilities[i] for i in class_members(runner.classes, obj.group or []))
        crop = ",".join(map(str, obj.crop)) if obj.crop else "whole photo"
        used = "yes" if obj in OBJECTS else "no"
        if obj.group is None:
            used += ": ImageNet has no class for it"
        elif name not in obj.group.split(","):
            used += ": top-1 not in the group"
        rows.append(
            f"| {obj.name} | {obj.photo} | {crop} | {name} {probabilities[best]:.2f} | {group} | "
            f"{total:.2f} | {used} |"
        )
    return rows


def backgrounds_table(runner: Runner) -> list[str]:
    rows = [
        "| background | fc2conv's top class over the pyramid | the highest group peak |",
        "|---|---|---|",
    ]
    rng = np.random.default_rng(0)
    for name in BACKGROUNDS:
        heat = fc2conv.heatmap(runner, background(name, rng))
        top = heat.top_classes(1)[0]
        groups = heat.select(GROUPS)
        peaks = [groups.peak(i).score for i in range(len(GROUPS))]
        worst = int(np.argmax(peaks))
        rows.append(
            f"| {name} | {top} {heat.peak(top).score:.2f} | "
            f"{OBJECTS[worst].name} {peaks[worst]:.3f} |"
        )
    return rows


def int8_section(quantization: Any) -> str:
    if quantization is None:
        return ""
    q = quantization
    vnni = any(flag in cpu_flags() for flag in ("avx512_vnni", "avx_vnni"))
    return f"""
## int8

`fc2conv.run.quantize.quantize` (what `fc2conv quantize` runs) calibrated on the
{q.calibration} tune composites. Its own comparison with fp32 on the {q.held_out} held-out
ones (one map per image, at quantize's default size): the arg-max class agrees in
{100 * q.argmax_agreement:.2f}% of {q.cells} cells, the largest relative error of an image's
maps is {q.relative_error:.3f}; detections: fp32 {q.boxes_fp32}, int8 {q.boxes_int8},
{q.boxes_matched} of the fp32 boxes found again (same class, IoU >= 0.5); {1000 * q.seconds_fp32:.0f} ms
fp32 and {1000 * q.seconds_int8:.0f} ms int8 per map. The int8 rows of the tables above run it
over the whole pyramid as fp32 runs (the tune set is its calibration set). This CPU
{"has" if vnni else "has no"} VNNI, where int8 gains most.
"""


def report(
    args: argparse.Namespace,
    results: dict[str, list[ImageScores]],
    tuned: dict[str, float],
    methods: Methods,
    quantization: Any,
    examples: list[tuple[Composite, str, Path]],
    sweeps: dict[str, Sweep],
    seconds: float,
) -> str:
    nl = "\n"
    objects = {name: objects_of(images) for name, images in results.items()}
    held = results["held-out"]
    command = "python benchmarks/localisation.py"
    if args.composites != 18:
        command += f" --composites {args.composites}"
    if args.first_seeds != "0,1000":
        command += f" --first-seeds {args.first_seeds}"
    if args.no_int8:
        command += " --no-int8"
    summaries = {name: localisation_table(objs, tuned) for name, objs in objects.items()}
    sections = []
    for name, summary in summaries.items():
        seeds = [image.composite.seed for image in results[name]]
        sections.append(
            f"### The {name} set: seeds {seeds[0]}–{seeds[-1]}, {len(seeds)} composites, "
            f"{len(objects[name])} objects\n\n{nl.join(summary.rows)}\n\n"
            f"{detection_notes(objects[name])}"
        )
    pr_rows = ["| export | set | settings | precision | recall |", "|---|---|---|---:|---:|"]
    verdicts, sweep_tables = [], []
    for method, sweep in sweeps.items():
        export = EXPORTS[method]
        chosen = f"score {sweep.best[0]:g}, box fraction {sweep.best[1]:g} (the tune set's best)"
        counted = [
            (name, "default", precision_recall(images, method)) for name, images in results.items()
        ]
        counted += [("tune", chosen, sweep.tune[sweep.best]), ("held-out", chosen, sweep.held)]
        for name, settings, (right, boxes, total) in counted:
            pr_rows.append(
                f"| {export} | {name} | {settings} | {right / max(boxes, 1):.3f} ({right} of "
                f"{boxes} boxes) | {right / total:.3f} ({right} of {total} objects) |"
            )
        held_p, held_r = sweep.held[0] / max(sweep.held[1], 1), sweep.held[0] / sweep.held[2]
        verdict = "met" if min(held_p, held_r) >= 0.9 else "**missed**"
        verdicts.append(f"- {export}: precision {held_p:.3f}, recall {held_r:.3f}, {verdict}")
        sweep_tables.append(f"{export}:\n\n{nl.join(sweep_rows(sweep))}")
    one_class = median(held, GRADCAM) / classes_per_image(held)
    try:
        import torchcam  # noqa: F401

        torchcam_note = "torchcam is installed, but its CAM family is not compared here."
    except ImportError:
        torchcam_note = (
            "torch-cam's CAM family (`torchcam`) is not installed here, so it is not compared."
        )
    pictures = [
        f"Held-out composite {composite.name} ({' and '.join(p.obj.name for p in composite.objects)}"
        f" on {composite.background}; {why}):\n\n![composite {composite.name}](images/{path.name})"
        for composite, why, path in examples
    ]
    int8 = " and fc2conv int8" if methods.int8 is not None else ""
    thresholds = ", ".join(f"{LABELS[k]} {v:g}" for k, v in tuned.items())
    return f"""# Localisation on real photos: fc2conv against Grad-CAM

Measured with `{command}` ({seconds / 60:.1f} minutes) on
{machine("torch", "onnxruntime", "python")}, grad-cam {version("grad-cam")}, scikit-image
{version("scikit-image")}. The machine is shared and noisy: the times are medians, and the
methods run one after the other on each composite (fc2conv, Grad-CAM at 224x224, Grad-CAM at
640x480{int8}, fc2conv CAM), so that all of them see the same load.

The classifier is EfficientNet-Lite0 with its ImageNet weights (`examples/efficientnet_lite0.py`)
for both methods. fc2conv runs its export (`fc2conv.export_model`, ImageNet mean and std,
224x224) in onnxruntime over the default heatmap pyramid (scales 2 down to the whole image in
steps of √2, then the classifier's view of the whole image); one pass gives every class, each
cell the classifier's probabilities on its window. "fc2conv CAM" is lite0 exported with
`mode="cam"`: the classifier (lite0's last Linear) runs at every position of the last feature
map instead of after its global mean, so the map's mean is the logits; `fc2conv.heatmap` runs it
once on the composite at its own 640x480 and gives the map as it is, a group's map the sum of its
members' (Zhou et al.'s class activation map, for every class in one pass). Grad-CAM (`pytorch_grad_cam.GradCAM`) runs the PyTorch model with target layer `_blocks[-1]`
(the last MBConv block: 320 channels, 7x7 at 224x224) on the composite resized to 224x224, as
the classifier is fed (and, in the rows marked so, at its own 640x480), one forward and one
backward per class group present, its target the sum of the group's logits. {torchcam_note}

## The composites

Objects cropped by hand from scikit-image's photos, used when lite0's top-1 on the crop (resized
to 224x224) lies in the object's group of ImageNet classes; each group is one map, the sum of its
members (`classes=["a,b,c"]`), for both methods:

{nl.join(objects_table(methods.fp32))}

Backgrounds: scikit-image images without those objects, scaled to cover 640x480 (1 to 1.3 times
more) and cut at random. None of them raises a group's map on its own (fc2conv's heatmap of one
random cut of each):

{nl.join(backgrounds_table(methods.fp32))}

Each composite holds one object (a quarter of them) or two of different groups, at random places
at least {MARGIN} pixels apart, mirrored half of the time, their longer side drawn from
{OBJECT_SIZE[0]}–{OBJECT_SIZE[1]} pixels (about half to one and a half of lite0's 224x224
window). Thresholds were chosen on the tune set ("the tune set's best" below); the held-out set
was looked at for no choice.

## Pointing and box accuracy

Pointing: the group map's highest point lies inside the object's box (fc2conv: the centre of its
best cell over the pyramid, `Heatmap.peak`; fc2conv CAM: the centre of its best cell; Grad-CAM:
its highest pixel). Box accuracy: IoU >= 0.5
with the object's box, for fc2conv's peak cell box (`Heatmap.peak(...).box`), for
`fc2conv.detect(..., classes=[group])` with its default settings (score 0.6, IoU 0.3: the box
with the best IoU, and the highest-scoring box), and for the box of the largest 8-connected
region of a map (scaled to [0, 1] by its minimum and maximum) above a threshold, as
wsolevaluation's MaxBoxAcc takes it, for Grad-CAM, for fc2conv's fused map (`Heatmap.dense`) and
for fc2conv's CAM (`Heatmap.dense`: the cells' values at their centres, linear in between):
at the threshold of {THRESHOLDS[0]:g}–{THRESHOLDS[-1]:g} (steps of 0.05) best on that set
(MaxBoxAcc's optimistic choice) and at the tune set's best ({thresholds}).

{(nl + nl).join(sections)}

Per object:

{nl.join(per_object_table(objects, tuned))}

## Seconds per image

Medians (min–max) over the composites, in seconds. fc2conv: `fc2conv.heatmap` of every class
(the groups then selected from it); Grad-CAM: one map per group present in the composite.
`fc2conv.detect` (default settings, the classes of the five groups) is timed after them, for
reference.

{nl.join(timing_table(results))}

Grad-CAM's time grows with the classes asked for and fc2conv's does not: on the held-out set one
Grad-CAM class takes {one_class:.3f} s (the median time per image over the mean classes per
image), so fc2conv's pass over the pyramid costs as much as Grad-CAM for
{median(held, FC2CONV) / one_class:.1f} classes, and its CAM of all 1000 classes as much as
Grad-CAM for {median(held, CAM) / one_class:.1f}.

## Targets (held-out set)

{nl.join(targets_lines(summaries["held-out"].shares, held))}

## Detection precision and recall

`fc2conv.detect` with `classes=` the five groups, each group one object (its score the sum of
its members' probabilities), with its default settings (score 0.6, IoU 0.3, box fraction
{BOX_FRACTION:g}: lite0's export records none) and at the score threshold and box fraction best
on the tune set; a box is right when its group is that of a not yet matched object and their
IoU is at least 0.5 (best scores first). On the window export a cell's box spans the cells next
to it that score at least half its score, plus half a window shrunk to the box fraction on each
side; proposals from smaller windows lead among alike scores (`fc2conv.run.detection`). On the
cam export the windows are the means of its map over the cells each covers, exactly the window
export's cells (the same probabilities and proposals), and each box kept is then replaced by the
region of its group's class-activation map (at the composite's own size, scaled to [0, 1])
above {CAM_REGION:g} that holds the map's highest point in the box ({CAM_REGION:g}: the threshold
best for the CAM's boxes on the tune set, above).

{nl.join(pr_rows)}

The tune set's precision / recall at each setting (IoU 0.3; bold: the best, chosen by the
higher of min(precision, recall), then their sum):

{(nl + nl).join(sweep_tables)}

The target is 0.9 for both on the held-out set at the setting chosen on the tune set:

{nl.join(verdicts)}
{int8_section(quantization)}
## Pictures

Left: the object's box (white, dashed), fc2conv's peak cell (cyan) and its best detection of the
group (yellow); second: fc2conv's group probability (+: its peak); third: fc2conv's CAM, scaled
to [0, 1] (+: its peak), its box at the tune set's threshold (magenta) and the cam export's best
detection of the group (yellow, dotted); right: Grad-CAM's map
(224x224 input) and its box at the tune set's threshold.

{(nl + nl).join(pictures)}

## The maps for wsolevaluation

`--wsol-dir DIR` writes every map, one image id `<composite>/<object>` per composite and
object, in the layout of wsolevaluation's `evaluation.py`:

- `DIR/<method>/<set>/<composite>/<object>.npy`: the map, a 2-D float32 array in [0, 1]
  scaled by its minimum and maximum (wsolevaluation's `normalize_scoremap`); `<method>` is
  `fc2conv` (the group's fused probability, `Heatmap.dense`), `fc2conv_cam` (the group's
  CAM), `gradcam` (224x224 input) or `gradcam_640x480`; `<set>` is `tune` or `held-out`; `<composite>` the seed in five digits;
  `<object>` one of {", ".join(obj.name for obj in OBJECTS)}. The maps are image-sized
  (480x640) unless `--wsol-size 224` writes them at 224x224, the size to which
  wsolevaluation's box evaluator scales the ground-truth boxes (its `_RESIZE_LENGTH`): its
  `evaluation.py` needs that size.
- `DIR/metadata/ILSVRC/<set>/`: `image_ids.txt` (`<composite>/<object>`), `class_labels.txt`
  (`<id>,<group index>`), `image_sizes.txt` (`<id>,640,480`) and `localization.txt`
  (`<id>,x0,y0,x1,y1`, inclusive pixels); `DIR/metadata/groups.txt` names the group indices.
  (`ILSVRC` is the dataset name for which `evaluation.py` runs its box evaluator.)
- `DIR/images/<set>/<composite>.png`: the composites.

Scoring the maps with wsolevaluation's own code:
`python evaluation.py --scoremap_root DIR/fc2conv/held-out --metadata_root DIR/metadata
--dataset_name ILSVRC --split held-out` (after `--wsol-size 224`).
"""


# --- the run ----------------------------------------------------------------------------------


def main() -> None:
    from fc2conv.run.quantize import MIN_CALIBRATION

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--composites", type=int, default=18, help="composites per set")
    parser.add_argument(
        "--first-seeds", default="0,1000", help="first seeds of the tune and held-out sets"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "fc2conv_localisation",
        help="where the ONNX export is kept between runs",
    )
    parser.add_argument("--no-int8", action="store_true", help="leave fc2conv's int8 copy out")
    parser.add_argument("--wsol-dir", type=Path, help="also write the maps for wsolevaluation")
    parser.add_argument("--wsol-size", type=int, help="write those maps at SIZExSIZE (224)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "localisation.md")
    parser.add_argument("--images", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    if not args.no_int8 and args.composites < MIN_CALIBRATION:
        parser.error(f"int8 calibrates on the tune set: {MIN_CALIBRATION} composites or --no-int8")
    started = time.perf_counter()
    sys.path.insert(0, str(ROOT))  # examples/ for lite0, here and in the export's child process
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    first_tune, first_held = (int(seed) for seed in args.first_seeds.split(","))
    patches = {obj.name: object_patch(obj) for obj in OBJECTS}
    sets = {
        "tune": [compose(first_tune + i, patches) for i in range(args.composites)],
        "held-out": [compose(first_held + i, patches) for i in range(args.composites)],
    }
    onnx_path = export_lite0(args.cache)
    cam_path = export_lite0(args.cache, mode="cam")
    int8_path = quantization = None
    if not args.no_int8:
        print("quantizing: calibration on the tune composites")
        int8_path, quantization = quantize_int8(onnx_path, sets, args.cache / "int8")
    methods = open_methods(onnx_path, int8_path, cam_path)
    score_composite(sets["tune"][0], methods, None)  # warm-up: sessions, PyTorch's first backward
    results: dict[str, list[ImageScores]] = {}
    for set_name, composites in sets.items():
        wsol = Wsol(args.wsol_dir, set_name, args.wsol_size) if args.wsol_dir else None
        results[set_name] = []
        for composite in composites:
            scores = score_composite(composite, methods, wsol)
            results[set_name].append(scores)
            times = ", ".join(f"{k} {v:.2f} s" for k, v in scores.seconds.items())
            print(f"{set_name} {composite.name}: {times}")
        if wsol is not None:
            wsol.write()
    tune_objects = objects_of(results["tune"])
    tuned = {m: best_threshold(tune_objects, m) for m in MAPS}
    args.images.mkdir(parents=True, exist_ok=True)
    examples = []
    for (composite, why), picture in zip(
        choose_examples(results["held-out"]),
        ("localisation_example.png", "localisation_disagreement.png"),
        strict=False,
    ):
        draw_example(composite, methods, args.images / picture, tuned)
        examples.append((composite, why, args.images / picture))
    print("detection settings swept on the tune set")
    sweeps = {
        DETECT: sweep_detection(methods.fp32, sets),
        DETECT_CAM: sweep_detection(methods.activation, sets),
    }
    seconds = time.perf_counter() - started
    text = report(args, results, tuned, methods, quantization, examples, sweeps, seconds)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
