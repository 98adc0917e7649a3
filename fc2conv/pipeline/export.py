"""Name → loaded → converted → verified → exported: :func:`export_model`, with the PyTorch part
(:func:`stage`) in the export's child process and the file checks in the caller's (see
:mod:`fc2conv.export.isolated`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Fc2ConvError, UsageError
from ..export.isolated import ExportReport, check_staged, report_of, run_worker
from ..export.onnx_file import (
    TWO_GB,
    UNKNOWN_PREPROCESSING,
    SizeCheck,
    preprocessing_known,
    staged,
)
from ..progress import SILENT, Progress
from .spec import ModelSpec, refuse_pytorch_options

if TYPE_CHECKING:
    from ..onnx_in import OnnxConversion

__all__ = ["export_model", "is_onnx_file", "stage"]


def export_model(
    source: str | os.PathLike,
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
    bgr: bool = False,
    imagenet: bool = False,
    output: str | int | None = None,
    opset: int | None = None,
    rtol: float = 1e-4,
    check: bool = True,
    force: bool = False,
    external_data_threshold: int = TWO_GB,
    progress: Progress = SILENT,
) -> ExportReport | OnnxConversion:
    """Load, convert, verify and export the model ``source`` to ``path``: what
    ``fc2conv MODEL --out PATH`` runs. For a model name or your own code's import string, the
    PyTorch part runs in a child process and the file checks in this one (when it has not
    imported PyTorch itself), so that the two never share memory; the arguments are those of
    :func:`fc2conv.pipeline.prepare` and :func:`fc2conv.export_onnx` (``opset`` 18 or newer,
    default 18), and an :class:`ExportReport` comes back. An ONNX classifier file is converted
    with the ONNX rules, without PyTorch (:func:`fc2conv.convert_onnx`, which ``bgr`` and
    ``output`` are for; ``opset`` default: the file's own). ``imagenet``: ImageNet's mean and
    std, for an ONNX classifier or your own code.
    """
    if imagenet:
        from ..sources.base import IMAGENET_MEAN, IMAGENET_STD
        from ..sources.imports import is_import_string

        if not (is_onnx_file(source) or is_import_string(str(source))):
            raise Fc2ConvError(
                "--imagenet: for ONNX classifiers and your own code; a model name brings its "
                "own preprocessing"
            )
        if mean is not None or std is not None:
            raise Fc2ConvError("--imagenet sets the mean and std: give it or --mean/--std")
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
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
    if is_onnx_file(source):
        from ..onnx_in import convert_onnx

        refuse_pytorch_options(spec)
        return convert_onnx(
            source,
            path,
            input_size=input_size,
            input_channels=input_channels,
            classes=classes,
            mean=mean,
            std=std,
            bgr=bgr,
            opset=opset,
            rtol=rtol,
            verify=check,
            force=force,
            output=output,
            progress=progress,
        )
    from ..sources import check_model_name
    from ..sources.imports import is_import_string

    source = str(source)
    wrong = [] if is_import_string(source) else spec.flags("mean", "std")
    wrong += [flag for flag, given in (("--bgr", bgr), ("--output", output is not None)) if given]
    if wrong:
        raise Fc2ConvError(
            f"{', '.join(wrong)}: for ONNX classifiers (--mean and --std also for your own "
            "code); a model name brings its own preprocessing and class output"
        )
    if opset is None:
        opset = 18
    elif opset < 18:
        raise UsageError(f"--opset {opset}: PyTorch models export at opset 18 or later")
    check_model_name(source, exporting=True)
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
        if "checks" in staged_info:  # the second route checked the file in the child process
            checks = [SizeCheck.from_json(check) for check in staged_info["checks"]]
        else:
            checks = check_staged(staging, rtol, progress, timings) if check else []
    fields = {"verified": staged_info["verified"], "geometry": staged_info["geometry"]}
    fields["notes"] = staged_info.get("notes", [])
    return report_of(target, opset, checks, timings, **fields)


def is_onnx_file(model: str | os.PathLike) -> bool:
    """An existing file that is an ONNX model (by its content), or any path ending in .onnx
    (which must exist)."""
    from ..export.onnx_file import looks_like_onnx

    path = Path(model)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise Fc2ConvError(f"{model} does not exist; check the path")
        return True
    return path.is_file() and looks_like_onnx(path)


def stage(request: dict[str, Any], progress: Any) -> dict[str, Any]:
    """Load, convert, verify and stage the model: the PyTorch part of :func:`export_model`, run
    in the export's child process (``progress``: its event progress, which times each step).
    A model whose forward torch.fx cannot trace takes the second route (:mod:`.onnx_route`)."""
    start = time.perf_counter()
    from ..equivalence import verify
    from ..errors import ForwardTraceError
    from ..export.torch_onnx import stage as stage_onnx
    from .prepared import convert_loaded, load_spec

    progress.timings["imports"] = time.perf_counter() - start
    name, spec = request["source"], ModelSpec.from_json(request["spec"])
    loaded, size = load_spec(name, spec, progress)
    try:
        converted = convert_loaded(name, spec, loaded, size, progress)
    except ForwardTraceError as traced:
        return _stage_through_onnx(request, name, spec, loaded, size, traced, progress)
    metadata = converted.metadata
    verified = None
    if request["check"]:
        with progress.step("verifying against the original model"):
            verified = verify(loaded.model, converted, rtol=request["rtol"])
    with progress.step("exporting to ONNX") as say:
        stage_onnx(
            converted,
            Path(request["staging"]),
            request["name"],
            opset=request["opset"],
            external_data_threshold=request["external_data_threshold"],
            cases=request["check"],
            say=say,
        )
    return {
        "verified": None if verified is None else str(verified),
        "geometry": str(converted.geometry),
        "timings": progress.timings,
        "notes": [] if preprocessing_known(metadata) else [UNKNOWN_PREPROCESSING],
    }


def _stage_through_onnx(
    request: dict[str, Any],
    name: str,
    spec: ModelSpec,
    loaded: Any,
    size: tuple[int, int],
    traced: Any,
    progress: Any,
) -> dict[str, Any]:
    """The second route's staging: the converted file is written and checked here, in
    onnxruntime (the checks the parent would run come back with the result)."""
    from dataclasses import asdict

    from .onnx_route import convert_through_onnx

    routed = convert_through_onnx(
        name,
        loaded,
        spec,
        size,
        traced,
        Path(request["staging"]) / request["name"],
        opset=request["opset"],
        rtol=request["rtol"],
        verify=request["check"],
        progress=progress,
    )
    conversion = routed.conversion
    checks = [
        SizeCheck(c.height, c.width, c.map_size, c.relative_error, request["rtol"])
        for c in conversion.checks
    ]
    return {
        "verified": routed.verified(),
        "geometry": str(conversion.geometry),
        "timings": progress.timings,
        "notes": [routed.route, *conversion.notes],
        "checks": [asdict(check) for check in checks],
    }
