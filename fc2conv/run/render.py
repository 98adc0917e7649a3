"""Pictures of heatmaps and detections (matplotlib, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches

from .detection import Detections
from .heatmaps import Heatmap
from .images import resize

__all__ = ["picture_formats", "save_detections", "save_heatmaps"]

#: the longest side of the image behind a heatmap panel (about twice the panel's pixels)
PANEL_PIXELS = 840


def save_heatmaps(
    image: np.ndarray,
    result: Heatmap,
    path: str | os.PathLike,
    classes: Sequence[str | int] | None = None,
    columns: int = 3,
    full_size: bool = False,
) -> None:
    """The image with one class's heatmap per panel (fused over the pyramid), overlaid with a
    colour map and a labelled colour bar; a white ring marks each class's peak. ``image`` may
    be a scaled-down copy of the image the heatmap is of. ``full_size``: each panel shows
    ``image`` at its own size in pixels (else about 420 pixels wide)."""
    chosen = list(classes) if classes is not None else list(result.classes)
    rows = (len(chosen) + columns - 1) // columns
    width = min(columns, len(chosen))
    if not full_size and max(image.shape[:2]) > PANEL_PIXELS:  # no more pixels than shown
        factor = PANEL_PIXELS / max(image.shape[:2])
        image = resize(image, (round(image.shape[0] * factor), round(image.shape[1] * factor)))
    height, image_width = image.shape[:2]
    to_picture = image_width / result.image_size[1]
    panel = image_width / 100 + 0.8 if full_size else 4.2
    figure, axes = plt.subplots(
        rows,
        width,
        figsize=(panel * width, panel * height / image_width * rows + 0.4 * rows),
        squeeze=False,
    )
    for axis in axes.flat[len(chosen) :]:
        figure.delaxes(axis)  # no empty panels
    for axis, name in zip(axes.flat, chosen, strict=False):
        axis.axis("off")
        # fine maps (small stride) of position-sensitive classifiers are sharp: widen each peak
        # to about an object's size; coarse maps are smooth already
        fine = result.stride[0] < 16
        spread = round(0.4 * result.window[0] / result.stride[0]) if fine else 1
        dense = result.dense(name, spread, size=(height, image_width))
        # probabilities on one 0..1 scale, so a class that is absent looks absent; raw scores
        # (probabilities=False) from their minimum to their maximum
        low = 0.0 if result.probabilities else float(dense.min())
        high = 1.0 if result.probabilities else max(float(dense.max()), low + 1e-6)
        level = np.clip((dense - low) / max(high - low, 1e-6), 0, 1)
        colours = plt.get_cmap("turbo")(level)
        colours[..., 3] = 0.9 * np.sqrt(level)  # transparent where the class is absent
        axis.imshow(image.mean(axis=2), cmap="gray", vmin=0, vmax=1.6)  # dimmed, for contrast
        axis.imshow(colours)
        shown = plt.cm.ScalarMappable(cmap="turbo", norm=matplotlib.colors.Normalize(low, high))
        peak = result.peak(name)
        axis.plot(
            [peak.x * to_picture],
            [peak.y * to_picture],
            marker="o",
            markerfacecolor="none",
            markeredgecolor="white",
            markersize=16,
            mew=1.2,
        )
        label = result.classes[result.index(name)]
        where = f", scale {peak.scale:.2g}" if len(result.levels) > 1 else ""
        where = ", the whole image" if peak.whole_image else where
        axis.set_title(f"{label} (peak {peak.score:.2f}{where})", fontsize=10)
        bar = figure.colorbar(shown, ax=axis, fraction=0.035, pad=0.02)
        bar.set_label("probability" if result.probabilities else "score", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_detections(image: np.ndarray, detections: Detections, path: str | os.PathLike) -> None:
    """The image with each detection's box, class and score. ``image`` may be a scaled-down
    copy of the image the detections are in."""
    height, width = image.shape[:2]
    whole = detections.settings.get("image_size") or [height, width]
    to_picture = width / whole[1]
    figure = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    axis = figure.add_axes((0, 0, 1, 1))
    axis.imshow(image)
    axis.axis("off")
    colours = plt.get_cmap("tab10")
    if not len(detections):
        axis.text(
            width / 2,
            height / 2,
            "no detections",
            color="white",
            fontsize=14,
            ha="center",
            va="center",
            bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"},
        )
    for box, score, label in zip(
        detections.boxes, detections.scores, detections.labels, strict=True
    ):
        colour = colours(int(label) % 10)
        x1, y1, x2, y2 = (float(v) * to_picture for v in box)
        axis.add_patch(
            patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=2)
        )
        inside = y1 < LABEL_HEIGHT  # no room above the box: its label goes inside its top edge
        axis.text(
            max(0.0, x1),
            max(0.0, y1) + 2 if inside else y1 - 3,
            f"{detections.classes[int(label)]} {score:.2f}",
            color="white",
            fontsize=8,
            va="top" if inside else "bottom",
            bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "edgecolor": "none"},
        )
    figure.savefig(path, dpi=100)
    plt.close(figure)


#: a detection label's height in picture pixels (8 pt at 100 dpi, with its padding)
LABEL_HEIGHT = 16


def picture_formats() -> set[str]:
    """The file extensions matplotlib can write a picture as (png, jpg, pdf, svg, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())
