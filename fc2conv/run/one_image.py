"""A run over one image with its outputs, the single-image counterpart of
:class:`~fc2conv.run.many.ManyImages`: ``fc2conv heatmap|detect MODEL IMAGE --out ... --json ...``
in one call. The outputs are checked when the run is made, before any model runs, and written
only when all of them succeeded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Fc2ConvError
from ..progress import SILENT, Progress
from .outputs import check_output, output_files

__all__ = ["OneImage"]


@dataclass
class OneImage:
    """``command`` ("heatmap" or "detect") on the file ``image``, writing the picture ``out``
    (.png, .jpg, .pdf, .svg, ...), the results as JSON (``json``) and, for heatmaps, the raw maps
    of every level (``maps``, .npz); an existing output is replaced only with ``force``."""

    command: str
    image: str | Path
    out: Path | None = None
    json: Path | None = None
    maps: Path | None = None
    force: bool = False

    def __post_init__(self) -> None:
        from .render import picture_formats

        if not Path(self.image).is_file():
            raise Fc2ConvError(f"{self.image} does not exist; check the path")
        if self.out is not None and self.out.suffix.lower().lstrip(".") not in picture_formats():
            listed = ", ".join(f".{name}" for name in sorted(picture_formats()))
            raise Fc2ConvError(f"cannot write a picture as {self.out.name}: use one of {listed}")
        if self.maps is not None and (self.command != "heatmap" or self.maps.suffix != ".npz"):
            raise Fc2ConvError(f"--maps writes a heatmap's NumPy .npz file, not {self.maps.name}")
        paths = self.paths
        if not paths:
            raise Fc2ConvError("one image needs a picture (--out) or a JSON file (--json)")
        if len(set(map(Path.resolve, paths))) < len(paths):
            raise Fc2ConvError("--out, --json and --maps must name different files")
        for path in paths:
            check_output(path, self.force)

    @property
    def paths(self) -> list[Path]:
        """The outputs asked for."""
        return [path for path in (self.out, self.json, self.maps) if path is not None]

    def run(self, runner: Any, settings: dict[str, Any], progress: Progress = SILENT) -> list[str]:
        """Run ``runner`` on the image with ``settings`` (those of
        :class:`~fc2conv.run.many.ManyImages`, plus ``full_size`` for heatmap pictures), write
        the outputs and return what the command prints: what was written, then a line per class
        peak or detection."""
        from .heatmaps import class_members
        from .images import read_image

        names = settings.get("classes") or ()
        for name in names:  # unknown names fail before the model runs
            class_members(runner.classes, name)
        max_size = settings.get("max_size", 2048)
        pixels, size = read_image(self.image, max_size, settings.get("max_pixels"))
        run = self._heatmap if self.command == "heatmap" else self._detect
        largest, lines = run(runner, pixels, size, settings, progress)
        return [*_scaled_note(size, largest, max_size), *lines]

    def _heatmap(
        self, runner: Any, pixels: Any, size: Any, settings: dict[str, Any], progress: Progress
    ) -> tuple[float, list[str]]:
        import numpy as np

        from .batch import chosen_classes
        from .heatmaps import heatmap
        from .render import save_heatmaps

        scales, max_size = settings.get("scales"), settings.get("max_size", 2048)
        top = int(settings.get("top", 4))
        with progress.step("computing class maps over the image pyramid"):
            result = heatmap(runner, pixels, scales=scales, max_size=max_size, image_size=size)
        background = runner.metadata.get("background")
        chosen = chosen_classes(result, tuple(settings.get("classes") or ()), top, background)
        shown = result.select(chosen)
        with output_files(self.paths) as temporaries:
            written = dict(zip(self.paths, temporaries, strict=True))
            if self.out is not None:
                title = Path(self.image).name
                full = bool(settings.get("full_size"))
                save_heatmaps(pixels, shown, written[self.out], full_size=full, title=title)
            if self.json is not None:
                data = {"model": runner.name, **result.as_dict(chosen, max(top, 5), background)}
                written[self.json].write_text(json.dumps(data, indent=2))
            if self.maps is not None:
                arrays: dict[str, Any] = {
                    f"level_{i}": level.scores for i, level in enumerate(result.levels)
                }
                arrays.update(scales=np.array(result.scales), classes=np.array(result.classes))
                arrays["whole_image"] = np.array([level.whole_image for level in result.levels])
                with open(written[self.maps], "wb") as file:
                    np.savez(file, **arrays)
        levels = ", ".join(f"{lv.scale:.2g}" for lv in result.levels if not lv.whole_image)
        if any(level.whole_image for level in result.levels):
            levels += " and the whole image"
        lines = [f"wrote {self._written()}: scales {levels}"]
        for label in shown.classes:
            peak = shown.peak(label)
            where = "the whole image" if peak.whole_image else f"scale {peak.scale:.2g}"
            lines.append(
                f"{label}: peak {peak.score:.3f} at x={peak.x:.0f}, y={peak.y:.0f} ({where})"
            )
        return max(result.scales), lines

    def _detect(
        self, runner: Any, pixels: Any, size: Any, settings: dict[str, Any], progress: Progress
    ) -> tuple[float, list[str]]:
        from .detection import detect
        from .render import save_detections

        options = {k: v for k, v in settings.items() if k not in ("max_pixels", "full_size")}
        with progress.step("detecting over the image pyramid"):
            found = detect(runner, pixels, image_size=size, **options)
        with output_files(self.paths) as temporaries:
            written = dict(zip(self.paths, temporaries, strict=True))
            if self.out is not None:
                save_detections(pixels, found, written[self.out])
            if self.json is not None:
                written[self.json].write_text(found.to_json())
        lines = [f"wrote {self._written()}: {len(found)} detection(s)"]
        for item in found.as_list():
            x1, y1, x2, y2 = item["box"]
            lines.append(
                f"{item['class']} {item['score']:.2f} at ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f})"
            )
        return max(found.settings["scales"]), lines

    def _written(self) -> str:
        return ", ".join(map(str, self.paths))


def _scaled_note(size: tuple[int, int], largest: float, max_size: int) -> list[str]:
    """The note for an image larger than ``max_size`` (which then ran scaled down)."""
    if max(size) <= max_size:
        return []
    return [
        f"note: the {size[1]}×{size[0]} image is larger than --max-size {max_size}: it ran "
        f"scaled down, at scales up to {largest:.2g}"
    ]
