"""What ``fc2conv inspect`` shows: the rewrite plan and the geometry of a model, without
exporting it; for a file fc2conv wrote, what it holds."""

from __future__ import annotations

import os
from typing import Any

from ..errors import Fc2ConvError, ForwardTraceError
from .spec import ModelSpec, refuse_pytorch_options

__all__ = ["inspect_model"]


def inspect_model(model: str | os.PathLike, **spec: Any) -> str:
    """The plan and geometry of ``model``: a model name (converted here, with the
    :class:`ModelSpec` fields in ``spec``; weights are loaded as the export loads them), an
    ONNX classifier file (converted with the ONNX rules, unchecked) or a file fc2conv wrote
    (its metadata)."""
    from ..export.onnx_file import describe_converted, looks_like_onnx, read_metadata

    if str(model).lower().endswith(".onnx") or (os.path.isfile(model) and looks_like_onnx(model)):
        from ..onnx_in import convert_onnx

        refuse_pytorch_options(ModelSpec(**spec))
        meta = read_metadata(model)
        if "geometry" in meta:  # written by fc2conv: what heatmap and detect will read
            return describe_converted(model, meta)
        size, channels = spec.get("input_size"), spec.get("input_channels")
        return str(convert_onnx(model, input_size=size, input_channels=channels, verify=False))
    return _inspect_pytorch(str(model), ModelSpec(**spec))


def _inspect_pytorch(name: str, spec: ModelSpec) -> str:
    from ..conversion import convert, plan
    from ..conversion.declared import declared_preprocessing
    from ..conversion.receptive import receptive_field
    from ..export.onnx_file import UNKNOWN_PREPROCESSING, preprocessing_known
    from ..sources import BUNDLED, known_names, load_model

    weights = spec.weights
    if weights.upper() == "DEFAULT" and name in known_names() and name != BUNDLED:
        weights = "none"  # torchvision's: the plan and geometry do not depend on the weights
    loaded = load_model(name, weights, num_classes=spec.num_classes, model_args=spec.model_args)
    size = spec.input_size or loaded.input_size
    if size is None:
        raise Fc2ConvError(
            f"{name}: its code does not say the size it classifies; pass --input-size HxW"
        )
    channels = spec.input_channels or loaded.input_channels  # as the export reads them
    options: dict[str, Any] = {"mode": spec.mode, "name": name, "input_channels": channels}
    try:
        the_plan = plan(loaded.model, size, **options)
    except ForwardTraceError as traced:  # what the export does: the second route
        from .onnx_route import convert_through_onnx

        size = (int(size[0]), int(size[1]))
        routed = convert_through_onnx(name, loaded, spec, size, traced, None, verify=False)
        return str(routed.conversion)
    converted = None
    if the_plan.convertible:  # its plan, with the notes that converting adds
        converted = convert(loaded.model, size, inplace=True, stride=spec.stride, **options)
        the_plan = converted.plan
    lines = [str(the_plan)]
    metadata = {**declared_preprocessing(loaded.model), **loaded.metadata}
    if not preprocessing_known({k: v for k, v in metadata.items() if v is not None}):
        lines.append(f"note: {UNKNOWN_PREPROCESSING}")
    if converted is not None:
        lines.append(f"geometry: {converted.geometry}")
        (top, left), (height, width) = receptive_field(converted)
        lines.append(f"a cell reads {height}x{width} pixels from ({left}, {top}) of its window")
    return "\n".join(lines)
