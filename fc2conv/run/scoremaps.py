"""Heatmaps as score maps for weakly supervised localisation (WSOL) benchmarks, in the layout
that wsolevaluation (Choe et al., "Evaluating Weakly Supervised Object Localization Methods
Right", CVPR 2020) reads: for each image id of a split, ``<root>/<image id>.npy``, a 2-D float
map in [0, 1] of the image's labelled class, scaled by its minimum and maximum as
wsolevaluation's ``normalize_scoremap`` does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Fc2ConvError
from .batch import heatmap_many
from .heatmaps import ClassChoice, Heatmap, class_members, unit_scaled
from .runner import as_runner

__all__ = ["WSOL_SIZE", "read_split", "scoremap", "unit_scaled", "write_scoremaps"]

#: the side to which wsolevaluation's box evaluator scales images and boxes (its _RESIZE_LENGTH)
WSOL_SIZE = 224


def scoremap(
    result: Heatmap, choice: ClassChoice, size: tuple[int, int] | None = (WSOL_SIZE, WSOL_SIZE)
) -> np.ndarray:
    """One class's (or group's, see :meth:`.Heatmap.select`) fused map over the image
    (:meth:`.Heatmap.dense`) at ``size`` (height, width; None: the image's), in [0, 1]. The
    pyramid's whole-image view is left out where other levels exist: its one cell says where
    nothing is, and where it holds the highest score (an object that fills the photo) it would
    make the map constant, which wsolevaluation scales to zeros."""
    chosen = result.select([choice])
    located = [level for level in chosen.levels if not level.whole_image]
    if located:
        chosen = replace(chosen, levels=located)
    return unit_scaled(chosen.dense(0, size=size))


def read_split(metadata: str | os.PathLike) -> list[tuple[str, int]]:
    """The (image id, class label) pairs of a wsolevaluation split folder: its
    ``image_ids.txt`` (one id per line) and ``class_labels.txt`` (``<id>,<label>``)."""
    folder = Path(metadata)
    try:
        ids = [line.strip() for line in (folder / "image_ids.txt").read_text().splitlines()]
        labels = {}
        for number, line in enumerate((folder / "class_labels.txt").read_text().splitlines(), 1):
            if line.strip():
                image_id, _, label = line.strip().rpartition(",")
                if not image_id or not label.strip().lstrip("-").isdigit():
                    raise Fc2ConvError(
                        f"{folder / 'class_labels.txt'}:{number}: expected '<image id>,<class "
                        f"label>', got {line.strip()!r}"
                    )
                labels[image_id] = int(label)
    except OSError as exc:
        raise Fc2ConvError(
            f"cannot read the split {folder}: {exc.strerror or exc}; it needs image_ids.txt "
            "and class_labels.txt (wsolevaluation's metadata)"
        ) from exc
    ids = [image_id for image_id in ids if image_id]
    missing = [image_id for image_id in ids if image_id not in labels]
    if missing:
        raise Fc2ConvError(
            f"{folder / 'class_labels.txt'} has no label for {len(missing)} image id(s), e.g. "
            f"{missing[0]}"
        )
    return [(image_id, labels[image_id]) for image_id in ids]


def write_scoremaps(
    model: Any,
    metadata: str | os.PathLike,
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    classes: Sequence[ClassChoice] | None = None,
    size: tuple[int, int] | None = (WSOL_SIZE, WSOL_SIZE),
    **settings: Any,
) -> list[tuple[str, str]]:
    """Write ``<out>/<image id>.npy`` for every image of the wsolevaluation split
    ``metadata`` (see :func:`read_split`), read from ``images``/<image id>: the map of its
    labelled class, from ``model`` (a converted model, a Runner or an exported .onnx file).
    A label is the model's class index unless ``classes`` maps labels to the model's classes
    (``classes[label]``: a name, an index or a group, e.g. ``"tabby,tiger cat"``). ``size``:
    the maps' height and width (default 224x224, the size wsolevaluation's box evaluator
    takes; None: each image's own). ``settings`` go to :func:`fc2conv.heatmap_many`. Each
    file is written whole (through a temporary name). The images that could not be read
    are returned as (image id, error); the run goes on past them."""
    split = read_split(metadata)
    root, folder = Path(out), Path(images)
    runner = as_runner(model, settings.pop("output", None))
    choices = list(classes) if classes is not None else list(range(len(runner.classes)))
    bad = [label for _, label in split if not 0 <= label < len(choices)]
    if bad:
        given = (
            f"{len(choices)} given" if classes is not None else f"{runner.name} has {len(choices)}"
        )
        raise Fc2ConvError(f"class label {bad[0]} names no class ({given}); pass classes")
    for label in {label for _, label in split}:
        class_members(runner.classes, choices[label])  # a name the model lacks: refused now
    failed = []
    paths = [folder / image_id for image_id, _ in split]
    for (image_id, label), item in zip(split, heatmap_many(runner, paths, **settings), strict=True):
        if not item.ok:
            failed.append((image_id, str(item.error)))
            continue
        assert isinstance(item.result, Heatmap)
        choice = choices[label]
        target = root / f"{image_id}.npy"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        with open(partial, "wb") as file:
            np.save(file, scoremap(item.result, choice, size))
        os.replace(partial, target)
    return failed
