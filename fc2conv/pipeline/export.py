"""Name → loaded → converted → verified → exported: :func:`export_model`, with the PyTorch part
(:func:`stage`) in the export's child process and the file checks in the caller's (see
:mod:`fc2conv.export.isolated`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..export.isolated import ExportReport, check_staged, report_of, run_worker
from ..export.onnx_file import TWO_GB, UNKNOWN_PREPROCESSING, preprocessing_known, staged
from ..progress import SILENT, Progress
from .spec import ModelSpec

__all__ = ["export_model", "stage"]


def export_model(
    source: str,
    path: str | os.PathLike,
    *,
    weights: str = "DEFAULT",
    input_size: tuple[int, int] | None = None,
    input_channels: int | None = None,
    num_classes: int | None = None,
    classes: list[str] | str | os.PathLike | None = None,
    mode: str = "window",
    stride: int | None = None,
    model_args: dict[str, Any] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    opset: int = 18,
    rtol: float = 1e-4,
    check: bool = True,
    force: bool = False,
    external_data_threshold: int = TWO_GB,
    progress: Progress = SILENT,
) -> ExportReport:
    """Load, convert, verify and export the model named ``source`` to ``path``, with the
    PyTorch part in a child process and the file checks in this one (when it has not imported
    PyTorch itself), so that the two never share memory. What ``fc2conv MODEL --out PATH``
    runs; the arguments are those of :func:`fc2conv.pipeline.prepare` and
    :func:`fc2conv.export_onnx`.
    """
    from ..sources import check_model_name

    check_model_name(source, exporting=True)
    spec = ModelSpec(
        weights=weights,
        input_size=input_size,
        input_channels=input_channels,
        num_classes=num_classes,
        classes=classes,
        mode=mode,
        stride=stride,
        model_args=model_args,
        mean=mean,
        std=std,
    )
    target = Path(path)
    with staged(target, force) as staging:
        request = {
            "source": source,
            "spec": spec.as_json(),
            "opset": opset,
            "rtol": rtol,
            "check": check,
            "staging": str(staging.parent),
            "name": staging.name,
            "external_data_threshold": external_data_threshold,
        }
        start = time.perf_counter()
        staged_info = run_worker(f"{__name__}:stage", request, progress)
        timings = {"PyTorch process": time.perf_counter() - start, **staged_info["timings"]}
        checks = check_staged(staging, rtol, progress, timings) if check else []
    fields = {"verified": staged_info["verified"], "geometry": staged_info["geometry"]}
    fields["notes"] = staged_info.get("notes", [])
    return report_of(target, opset, checks, timings, **fields)


def stage(request: dict[str, Any], progress: Any) -> dict[str, Any]:
    """Load, convert, verify and stage the model: the PyTorch part of :func:`export_model`, run
    in the export's child process (``progress``: its event progress, which times each step)."""
    start = time.perf_counter()
    from ..equivalence import verify
    from ..export.torch_onnx import stage as stage_onnx
    from .prepared import prepare_spec

    progress.timings["imports"] = time.perf_counter() - start
    prepared = prepare_spec(request["source"], ModelSpec.from_json(request["spec"]), progress)
    metadata = prepared.converted.metadata
    verified = None
    if request["check"]:
        with progress.step("verifying against the original model"):
            verified = verify(prepared.loaded.model, prepared.converted, rtol=request["rtol"])
    with progress.step("exporting to ONNX") as say:
        stage_onnx(
            prepared.converted,
            Path(request["staging"]),
            request["name"],
            opset=request["opset"],
            external_data_threshold=request["external_data_threshold"],
            cases=request["check"],
            say=say,
        )
    return {
        "verified": None if verified is None else str(verified),
        "geometry": str(prepared.converted.geometry),
        "timings": progress.timings,
        "notes": [] if preprocessing_known(metadata) else [UNKNOWN_PREPROCESSING],
    }
