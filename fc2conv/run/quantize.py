"""Static int8 quantisation of a converted model, calibrated on the user's images, and how far
it moves the results: onnxruntime's quantisation tools (QDQ format, per-channel int8 weights,
uint8 activations, min/max calibration), then fp32 and int8 side by side on held-out images.

The report gives the share of cells whose arg-max class is the same, the relative error of the
class maps, the detections of both (and how many match: same class, IoU ≥ 0.5), and the median
time per image of each. No PyTorch.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..compare import relative_error
from ..errors import Fc2ConvError
from ..progress import SILENT, Progress
from .batch import collect_images
from .boxes import box_iou
from .detection import detect
from .images import read_image
from .runner import Runner

__all__ = ["MIN_CALIBRATION", "QuantizationReport", "quantize"]

#: fewer calibration images than this give activation ranges that do not generalise
MIN_CALIBRATION = 8


@dataclass
class QuantizationReport:
    """What :func:`quantize` wrote and measured (on ``held_out`` images not used to calibrate)."""

    path: Path
    calibration: int
    held_out: int
    cells: int
    argmax_agreement: float
    relative_error: float
    boxes_fp32: int
    boxes_int8: int
    boxes_matched: int
    seconds_fp32: float
    seconds_int8: float
    unreadable: int = 0  #: held-out images that could not be read or were too small

    def __str__(self) -> str:
        speed = self.seconds_fp32 / self.seconds_int8 if self.seconds_int8 else float("nan")
        return "\n".join(
            [
                f"wrote {self.path} (calibrated on {self.calibration} images)",
                f"on {self.held_out} held-out images ({self.cells} cells"
                + (f"; {self.unreadable} others could not be used" if self.unreadable else "")
                + "): arg-max class agrees "
                f"in {100 * self.argmax_agreement:.2f}% of cells; relative error of the maps "
                f"{self.relative_error:.3f}",
                f"detections: fp32 {self.boxes_fp32}, int8 {self.boxes_int8}, "
                f"{self.boxes_matched} of the fp32 boxes found again (same class, IoU ≥ 0.5)",
                f"time per image (median): fp32 {1000 * self.seconds_fp32:.0f} ms, int8 "
                f"{1000 * self.seconds_int8:.0f} ms ({speed:.2f}x)",
            ]
        )


def quantize(
    model: str | os.PathLike,
    calibration: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    held_out: Iterable[str | os.PathLike] | None = None,
    size: int | None = None,
    force: bool = False,
    progress: Progress = SILENT,
) -> QuantizationReport:
    """Write a static int8 copy of the fc2conv model ``model`` (an .onnx file) to ``out``,
    calibrated on ``calibration`` images (files, folders, globs, @lists; at least
    :data:`MIN_CALIBRATION`), and compare it with the fp32 model on ``held_out`` images (default:
    a quarter of the calibration images, set aside). Images run at most ``size`` pixels on their
    longer side (default: twice the model's window, at least 448)."""
    from ..export.onnx_file import check_target, read_metadata, staged

    source, target = Path(model), Path(out)
    fp32 = Runner.from_onnx(source)
    if fp32.metadata.get("precision") == "int8":
        raise Fc2ConvError(
            f"{source} is already int8 (written by fc2conv quantize); quantize the fp32 model "
            "it came from"
        )
    check_target(target, force)
    images = collect_images(calibration)
    if held_out is None:
        kept = max(2, len(images) // 4)
        images, test = images[:-kept], images[-kept:]
    else:
        test = collect_images(held_out)
    if len(images) < MIN_CALIBRATION:
        raise Fc2ConvError(
            f"{len(images)} calibration images; int8 needs at least {MIN_CALIBRATION} (and some "
            "more set aside to check it, unless --held-out names them): give a folder of images "
            "like the ones the model will see"
        )
    longest = size or max(448, 2 * max(fp32.geometry.window))
    with staged(target, force) as path:
        with progress.step(f"calibrating on {len(images)} images and quantizing") as say:
            reader = _Calibration(fp32, images, longest, say)
            quantize_graph(source, path, reader)
            if reader.done == 0:
                raise Fc2ConvError("none of the calibration images could be read or used")
            _copy_metadata(source, path, read_metadata(source))
        with progress.step(f"comparing fp32 and int8 on {len(test)} held-out images") as say:
            report = _compare(fp32, Runner.from_onnx(path), test, longest, say)
    return QuantizationReport(target, reader.done, **report)


class _Calibration:
    """onnxruntime's CalibrationDataReader: the calibration images, preprocessed as the run
    path does, one at a time (their sizes differ)."""

    def __init__(self, runner: Runner, paths: list[Path], longest: int, say: Any) -> None:
        self.runner, self.longest, self.say = runner, longest, say
        self.paths = iter(paths)
        self.name = runner.session.get_inputs()[0].name
        self.count = len(paths)
        self.done = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        for path in self.paths:
            try:
                pixels = _model_sized(self.runner, path, self.longest)
            except Fc2ConvError as exc:
                self.say(f"skipping {path}: {exc}")
                continue
            self.done += 1
            self.say(f"calibrating: image {self.done} of {self.count}")
            return {self.name: self.runner.preprocess(pixels)}
        return None


def _model_sized(runner: Runner, path: Path, longest: int) -> np.ndarray:
    """The image at most ``longest`` pixels on its longer side, cut to a size the model takes."""
    pixels, _ = read_image(path, longest)
    height, width = runner.geometry.usable_size(*pixels.shape[:2])
    runner.geometry.check_input(height, width, runner.name)
    return pixels[:height, :width]


def quantize_graph(source: Path, target: Path, reader: Any) -> None:
    """fc2conv's int8 settings on any ONNX file, calibrated by ``reader`` (onnxruntime's
    CalibrationDataReader): onnxruntime's recommended path, pre-processing (graph optimisation,
    e.g. batch norms folded into convolutions, and shape inference), then static QDQ
    quantisation, uint8 activations and per-channel int8 weights, MinMax ranges."""
    import logging

    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_name("prepared.onnx")
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process, which this does
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    except Exception as exc:
        raise Fc2ConvError(f"onnxruntime's quantisation failed on {source}: {exc}") from exc
    finally:
        prepared.unlink(missing_ok=True)


def _copy_metadata(source: Path, target: Path, metadata: dict[str, Any]) -> None:
    """fc2conv's metadata (geometry, classes, preprocessing) onto the quantised file."""
    import onnx

    original = onnx.load(str(source), load_external_data=False)
    quantized = onnx.load(str(target))
    kept = {prop.key: prop.value for prop in original.metadata_props}
    kept["fc2conv.precision"] = '"int8"'
    del quantized.metadata_props[:]
    for key, value in kept.items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(quantized, str(target))


def _compare(
    fp32: Runner, int8: Runner, paths: list[Path], longest: int, say: Any
) -> dict[str, Any]:
    """The comparison fields of a :class:`QuantizationReport`."""
    agree = cells = boxes_fp32 = boxes_int8 = matched = unreadable = 0
    error = 0.0
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for number, path in enumerate(paths, 1):
        say(f"held-out image {number} of {len(paths)}")
        try:
            pixels = _model_sized(fp32, path, longest)
        except Fc2ConvError as exc:
            say(f"skipping {path}: {exc}")
            unreadable += 1
            continue
        maps = {}
        for label, runner in (("fp32", fp32), ("int8", int8)):
            start = time.perf_counter()
            maps[label] = runner.probabilities(pixels)
            times[label].append(time.perf_counter() - start)
        agree += int((maps["fp32"].argmax(0) == maps["int8"].argmax(0)).sum())
        cells += maps["fp32"][0].size
        error = max(error, relative_error(maps["fp32"], maps["int8"]))
        found = [detect(runner, pixels) for runner in (fp32, int8)]
        boxes_fp32 += len(found[0])
        boxes_int8 += len(found[1])
        matched += _matches(found[0], found[1])
    if not cells:
        raise Fc2ConvError("none of the held-out images could be read; give others with --held-out")
    return {
        "held_out": len(times["fp32"]),
        "cells": cells,
        "argmax_agreement": agree / cells,
        "relative_error": error,
        "boxes_fp32": boxes_fp32,
        "boxes_int8": boxes_int8,
        "boxes_matched": matched,
        "seconds_fp32": statistics.median(times["fp32"]),
        "seconds_int8": statistics.median(times["int8"]),
        "unreadable": unreadable,
    }


def _matches(want: Any, got: Any) -> int:
    """How many of ``want``'s boxes ``got`` has too (same class, IoU ≥ 0.5), each used once."""
    if not len(want) or not len(got):
        return 0
    overlaps = box_iou(want.boxes, got.boxes)
    overlaps[want.labels[:, None] != got.labels[None, :]] = 0
    count = 0
    for row in overlaps:
        best = int(row.argmax())
        if row[best] >= 0.5:
            overlaps[:, best] = 0  # each box of ``got`` matches once
            count += 1
    return count
