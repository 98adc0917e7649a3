"""Which run the arguments of ``fc2conv heatmap|detect`` ask for: one image with its picture and
JSON (:class:`~.one_image.OneImage`), or many with JSON Lines, pictures in a folder and COCO
(:class:`~.many.ManyImages`); its outputs are checked when it is chosen, before any model runs."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import Fc2ConvError, UsageError
from ..progress import SILENT, Progress
from .many import ManyImages
from .one_image import OneImage
from .video import is_video

__all__ = ["choose_run"]


def choose_run(
    command: str,
    images: Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike | None = None,
    json: str | os.PathLike | None = None,
    maps: str | os.PathLike | None = None,
    jsonl: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    coco: str | os.PathLike | None = None,
    out_video: str | os.PathLike | None = None,
    resume: bool = False,
    force: bool = False,
    ray: str | None = None,
    model: str | os.PathLike | None = None,
    progress: Progress = SILENT,
    quiet: bool = True,
) -> OneImage | ManyImages:
    """``command`` ("heatmap" or "detect") over ``images`` (files, folders, globs,
    ``@list.txt``): one existing image file without ``jsonl`` or ``out_dir`` is a run of one
    image, writing ``out``, ``json`` and (heatmap) ``maps``; anything else is a run of many,
    writing ``jsonl``, ``out_dir``, (detect) ``coco`` and, for one clip, ``out_video``, which
    takes none of the single-image outputs. ``model`` is the exported file that ``ray`` runs; ``quiet``: no progress bar.
    Arguments that do not go together raise :class:`~fc2conv.errors.UsageError`."""
    given_images = [str(image) for image in images]
    if not given_images:
        raise UsageError("no images given")
    first = Path(given_images[0])
    single = (
        len(given_images) == 1
        and not given_images[0].startswith("@")
        and not is_video(first)  # a clip is many frames
        and (first.is_file() or not (first.is_dir() or glob.has_magic(given_images[0])))
    )  # a missing file too: OneImage says so
    out, json, maps, jsonl, out_dir, coco, out_video = (
        Path(path) if path is not None else None
        for path in (out, json, maps, jsonl, out_dir, coco, out_video)
    )
    single_outputs = {"out": out, "json": json, "maps": maps}
    given = [f"--{name}" for name, value in single_outputs.items() if value is not None]
    if single and out_video is not None:
        raise UsageError(f"--out-video is a clip's annotated video, and {first} is an image")
    if single and jsonl is None and out_dir is None:
        if resume:
            raise Fc2ConvError("--resume goes with --jsonl (many images)")
        if ray is not None:
            raise Fc2ConvError("--ray writes --jsonl (many images); give --jsonl")
        if coco is not None:
            raise Fc2ConvError("--coco is for many images (with --jsonl); use --json for one")
        if first.is_file() and out is None and json is None:
            raise UsageError(
                "one image needs --out PICTURE (e.g. --out result.png) and/or --json FILE; runs "
                "of many images write --jsonl FILE and/or --out-dir FOLDER"
            )
        return OneImage(command, given_images[0], out=out, json=json, maps=maps, force=force)
    if jsonl is None and out_dir is None and out_video is None:
        what = "a folder" if first.is_dir() and len(given_images) == 1 else "many images"
        what = "a clip" if is_video(first) and len(given_images) == 1 else what
        if given:
            raise UsageError(
                f"{', '.join(given)} {'writes' if len(given) == 1 else 'write'} the results of "
                f"one image file, and {given_images[0]} is "
                f"{what}: write --jsonl FILE and/or --out-dir FOLDER instead"
            )
        if what == "a clip":
            raise UsageError(
                "a clip needs --jsonl FILE (a record per frame) and/or --out-dir FOLDER"
            )
        raise UsageError("many images need --jsonl FILE and/or --out-dir FOLDER")
    if given:
        raise Fc2ConvError(
            f"{', '.join(given)}: for a run of one image without --jsonl or --out-dir; "
            "runs with those write pictures into --out-dir"
        )
    from .batch import collect_images

    return ManyImages(
        command,
        collect_images(given_images),
        jsonl=jsonl,
        out_dir=out_dir,
        coco=coco,
        out_video=out_video,
        resume=resume,
        force=force,
        ray=ray,
        model=str(model) if model is not None else None,
        progress=progress,
        quiet=quiet,
    )
