"""``fc2conv heatmap|detect MODEL IMAGES ...`` in one call: the run the arguments ask for (its
outputs checked), then the model opened (converted on the fly from a name), then the run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..errors import UsageError
from ..progress import SILENT, Progress
from ..run.choice import choose_run
from ..run.many import ManySummary, picture_writer
from ..run.one_image import OneImage
from ..run.video import Sampling
from .open import open_model

__all__ = ["OUTPUTS", "SETTINGS", "run_command"]

#: the keywords of :func:`.choose_run`: what a run writes (``run_command``'s ``outputs``)
OUTPUTS = (
    "out", "json", "maps", "jsonl", "out_dir", "coco", "out_video", "resume", "force", "ray",
)  # fmt: skip
#: the ``settings`` of a run: :func:`fc2conv.heatmap`'s and :func:`fc2conv.detect`'s, the
#: heatmap's ``top``, the pixels an image file may decode to, a clip's frames and ``track``
SETTINGS = (
    "top", "scales", "score_threshold", "iou_threshold", "box_fraction", "max_size",
    "max_pixels", "every", "fps", "track",
)  # fmt: skip
#: settings that choose and follow a clip's frames
CLIP_SETTINGS = ("every", "fps", "track")


def run_command(
    command: str,
    model: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    settings: dict[str, Any],
    *,
    outputs: dict[str, Any] | None = None,
    full_size: bool = False,
    progress: Progress = SILENT,
    quiet: bool = True,
    **model_options: Any,
) -> list[str] | ManySummary:
    """Run ``command`` ("heatmap" or "detect") of ``model`` (an exported file or a name, opened
    with :func:`.open_model` and ``model_options``) over ``images`` with ``settings`` (those of
    :func:`fc2conv.heatmap` or :func:`fc2conv.detect`, and ``top`` for heatmaps), writing
    ``outputs`` (the keywords of :func:`fc2conv.run.choice.choose_run`: ``out``, ``json``,
    ``maps`` for one image; ``jsonl``, ``out_dir``, ``coco``, ``out_video``, ``resume``,
    ``ray`` for many;
    ``force``); ``full_size``: heatmap panels at the image's size. One image gives the lines the
    command prints (what was written, a line per class peak or detection), many a
    :class:`~fc2conv.run.many.ManySummary` (its ``check()`` raises when an image failed)."""
    Sampling(settings.get("every"), settings.get("fps"))  # which frames of clips: checked now
    chosen = choose_run(
        command, images, model=model, progress=progress, quiet=quiet, **(outputs or {})
    )
    if isinstance(chosen, OneImage):
        given = [f"--{key}" for key in CLIP_SETTINGS if settings.get(key)]
        if given:
            raise UsageError(f"{', '.join(given)}: for clips, and {images[0]} is one image")
        settings = {key: value for key, value in settings.items() if key not in CLIP_SETTINGS}
    runner = open_model(model, progress=progress, **model_options)
    if isinstance(chosen, OneImage):
        return chosen.run(runner, {**settings, "full_size": full_size}, progress)
    return chosen.run(runner, settings, picture_writer(command, runner, settings, full_size))
