"""Pictures of heatmaps and detections (matplotlib, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .detection import Detections
from .heatmaps import Heatmap
from .images import resize, size_from_json

__all__ = [
    "detections_figure",
    "figure_pixels",
    "heatmaps_figure",
    "picture_formats",
    "save_detections",
    "save_heatmaps",
]

#: the longest side of the image behind a heatmap panel (about twice the panel's pixels)
PANEL_PIXELS = 840
#: pictures' dots per inch: drawn, saved and turned into pixels at the same resolution
DPI = 100


def _figure(size: tuple[float, float]) -> Figure:
    """A figure of ``size`` inches at :data:`DPI`, drawn by Agg and outside pyplot's list of
    open figures: nothing to close, and pictures can be drawn on several threads."""
    figure = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def figure_pixels(figure: Figure) -> np.ndarray:
    """A figure drawn, as H×W×3 bytes (the RGB of Agg's RGBA buffer): what ``savefig`` writes
    as a PNG at :data:`DPI`, pixel for pixel (a video frame, say)."""
    figure.canvas.draw()
    rgba = np.asarray(figure.canvas.buffer_rgba())  # type: ignore[attr-defined]
    return np.ascontiguousarray(rgba[..., :3])


def save_heatmaps(
    image: np.ndarray,
    result: Heatmap,
    path: str | os.PathLike,
    classes: Sequence[str | int] | None = None,
    columns: int = 3,
    full_size: bool = False,
    title: str | None = None,
) -> None:
    """Save :func:`heatmaps_figure`'s picture to ``path`` (any of :func:`picture_formats`)."""
    figure = heatmaps_figure(image, result, classes, columns, full_size, title)
    figure.savefig(path, dpi=DPI)


def heatmaps_figure(
    image: np.ndarray,
    result: Heatmap,
    classes: Sequence[str | int] | None = None,
    columns: int = 3,
    full_size: bool = False,
    title: str | None = None,
) -> Figure:
    """The image with one class's heatmap per panel (fused over the pyramid), overlaid with a
    colour map and a labelled colour bar; a white ring marks each class's peak. ``image`` may
    be a scaled-down copy of the image the heatmap is of. ``full_size``: each panel shows
    ``image`` at its own size in pixels (else about 640 pixels wide for one class, 420 for
    several). ``title`` (e.g. the image's file name) heads the picture. Probabilities are shown
    on one 0–1 scale, so an absent class looks absent; where no class reaches
    :data:`FAINT`, the bar spans 0 to the highest probability instead, and says so."""
    chosen = list(classes) if classes is not None else list(result.classes)
    rows = (len(chosen) + columns - 1) // columns
    width = min(columns, len(chosen))
    if not full_size and max(image.shape[:2]) > PANEL_PIXELS:  # no more pixels than shown
        factor = PANEL_PIXELS / max(image.shape[:2])
        image = resize(image, (round(image.shape[0] * factor), round(image.shape[1] * factor)))
    height, image_width = image.shape[:2]
    to_picture = image_width / result.image_size[1]
    panel = image_width / 100 + 0.8 if full_size else (6.4 if len(chosen) == 1 else 4.2)
    maps = {
        name: result.dense(name, _spread(result), size=(height, image_width)) for name in chosen
    }
    faint = result.probabilities and max(float(m.max()) for m in maps.values()) < FAINT
    figure = _figure(
        (panel * width, panel * height / image_width * rows + 0.4 * rows + (0.3 if title else 0))
    )
    axes = figure.subplots(rows, width, squeeze=False)
    for axis in axes.flat[len(chosen) :]:
        figure.delaxes(axis)  # no empty panels
    for axis, name in zip(axes.flat, chosen, strict=False):
        axis.axis("off")
        dense = maps[name]
        # probabilities on one 0..1 scale, so a class that is absent looks absent (all faint:
        # 0 to the highest); raw scores (probabilities=False) from their minimum to their maximum
        low = 0.0 if result.probabilities else float(dense.min())
        if result.probabilities:
            high = max(max(float(m.max()) for m in maps.values()), 1e-6) if faint else 1.0
        else:
            high = max(float(dense.max()), low + 1e-6)
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
        unit = "probability" if result.probabilities else "score"
        bar.set_label(f"{unit} (all < {FAINT}: to the highest)" if faint else unit, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure


#: where every class's probability stays below this, a heatmap's colour bar spans 0 to the highest
#: probability (a model with random weights, or an image without its classes), not 0 to 1
FAINT = 0.2


def _spread(result: Heatmap) -> int:
    """Fine maps (small stride) of position-sensitive classifiers are sharp: each peak widened
    to about an object's size; coarse maps are smooth already."""
    return round(0.4 * result.window[0] / result.stride[0]) if result.stride[0] < 16 else 1


def save_detections(image: np.ndarray, detections: Detections, path: str | os.PathLike) -> None:
    """Save :func:`detections_figure`'s picture to ``path`` (any of :func:`picture_formats`)."""
    detections_figure(image, detections).savefig(path, dpi=DPI)


def detections_figure(image: np.ndarray, detections: Detections) -> Figure:
    """The image with each detection's box, class and score, one picture pixel per image
    pixel. ``image`` may be a scaled-down copy of the image the detections are in."""
    height, width = image.shape[:2]
    whole = detections.settings.get("image_size")
    to_picture = width / (size_from_json(whole)[1] if whole else width)
    figure = _figure((width / DPI, height / DPI))
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
    placed: list[tuple[float, float, float, float]] = []  # labels drawn so far
    for box, score, label in zip(
        detections.boxes, detections.scores, detections.labels, strict=True
    ):
        colour = colours(int(label) % 10)
        x1, y1, x2, y2 = (float(v) * to_picture for v in box)
        axis.add_patch(
            patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=2)
        )
        text = f"{detections.classes[int(label)]} {score:.2f}"
        x, y = _label_place((x1, y1, x2, y2), len(text), (width, height), placed)
        axis.text(
            x,
            y + 1,
            text,
            color="white",
            fontsize=8,
            va="top",
            bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "edgecolor": "none"},
        )
    return figure


#: a detection label's height, and about one character's width, in picture pixels (8 pt at
#: 100 dpi, with its padding)
LABEL_HEIGHT = 16
CHARACTER_WIDTH = 6.9


def _label_place(
    box: tuple[float, float, float, float],
    characters: int,
    picture: tuple[int, int],
    placed: list[tuple[float, float, float, float]],
) -> tuple[float, float]:
    """Where a box's label goes (its top-left corner): above the box, else inside its top
    edge, below it, inside its bottom edge, else lower inside the box, whichever first stays in
    the picture and covers no label placed before (labels of overlapping boxes stay readable).
    The chosen place is added to ``placed``."""
    x1, y1, _, y2 = box
    width, height = picture
    w, h = characters * CHARACTER_WIDTH + 4, LABEL_HEIGHT
    x = min(max(0.0, x1), max(0.0, width - w))
    tops = [y1 - h, y1, y2, y2 - h]
    tops += [y1 + k * h for k in range(2, max(2, int((y2 - y1) // h)))]
    inside = [t for t in tops if 0 <= t <= height - h]

    def free(top: float) -> bool:
        return all(
            x + w <= a or a + c <= x or top + h <= b or b + d <= top for a, b, c, d in placed
        )

    top = next(
        (t for t in inside if free(t)), inside[0] if inside else max(0.0, min(y1, height - h))
    )
    placed.append((x, top, w, h))
    return x, top


def picture_formats() -> set[str]:
    """The file extensions matplotlib can write a picture as (png, jpg, pdf, svg, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())
